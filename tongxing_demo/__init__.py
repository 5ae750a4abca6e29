"""The Tongxing demo federation: three Keycloak regions, two portals and the gateway, on loopback.

Not part of the gateway: a package beside it that uses the gateway (:mod:`gateway`) and the
operator's realm templates and Keycloak wrapper (:mod:`realm_operator`) as any deployment would.
``tongxing demo`` runs it (:mod:`tongxing_demo.demo`); ``make demo`` runs it against the
development harness's Keycloak (:mod:`tongxing_demo.harness`).

    federation    who takes part: regions, citizens, portals
    realms        the regions' Keycloak realms, from the product's templates in ``realms/``
    portal        a demo portal: a relying party of the gateway
    secrets_file  the secrets generated once and kept in the data folder
    server        a Werkzeug server on a thread, on loopback
    demo          start, print where to click, stop
"""
