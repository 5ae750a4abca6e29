"""A minimal kopf operator for the control-plane smoke test: it greets every Smoke object."""

from __future__ import annotations

from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = False  # events are not what this smoke test is about
    settings.watching.server_timeout = 10


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # kopf's own kubeconfig reader looks at $KUBECONFIG when called; the client library's
    # default location is fixed when it is first imported, before the harness sets it.
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.create("smoke.tongxing.io", "v1", "smokes")
def greet(spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
    patch.status["greeting"] = f"你好, {spec['name']}"
