"""Tongxing's kopf operator: Region and Portal resources -> Keycloak realms + gateway registry.

The folder is ``operator/`` but the import package is ``realm_operator``: ``operator`` is a
standard-library module and must not be shadowed.
"""
