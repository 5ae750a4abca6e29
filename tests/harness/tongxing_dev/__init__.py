"""The Tongxing test harness: obtains, caches and starts the real servers the tests run against.

Every component (PostgreSQL, Keycloak, etcd + kube-apiserver, the Node protocol peers, Chromium)
is obtained once into a cache outside the repository, keyed by version, and started on loopback
and free ports only. A component that cannot be obtained or started raises
:class:`ComponentError` naming it and showing why: the harness never skips and never fakes.
"""

from tongxing_dev.errors import ComponentError

__all__ = ["ComponentError"]
