"""The Secrets the operator reads (Keycloak admin credentials) and writes (portal credentials).

kopf watches the custom resources; Secrets are read and written with the Kubernetes client,
synchronously, from kopf's handler threads. API server trouble is :class:`ClusterUnavailableError`.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from realm_operator.models import API_VERSION

MANAGED_BY = {"app.kubernetes.io/managed-by": "tongxing-operator"}


class ClusterUnavailableError(Exception):
    """The API server cannot be reached or answered 5xx."""


@dataclass(frozen=True)
class Owner:
    """The custom resource a Secret belongs to (its owner reference)."""

    kind: str
    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class StoredSecret:
    data: dict[str, str]
    owner_uids: frozenset[str]

    def owned_by(self, owner: Owner) -> bool:
        return owner.uid in self.owner_uids


def api_client() -> client.ApiClient:
    """In a pod, the service account; elsewhere ``$KUBECONFIG`` (read now, not at import)."""
    if Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists():
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    found: client.ApiClient = config.new_client_from_config(
        config_file=os.environ.get("KUBECONFIG")
    )
    return found


def _decode(data: dict[str, str] | None) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (data or {}).items()}


class Secrets:
    def __init__(self, api: client.ApiClient, timeout: float = 5.0) -> None:
        self._core = client.CoreV1Api(api)
        self._timeout = timeout

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, _request_timeout=self._timeout, **kwargs)
        except ApiException as exc:
            if exc.status is not None and exc.status >= 500:
                raise ClusterUnavailableError(f"the API server answered {exc.status}") from exc
            raise
        except HTTPError as exc:
            raise ClusterUnavailableError("cannot reach the API server") from exc

    def read(self, namespace: str, name: str) -> StoredSecret | None:
        try:
            found = self._call(self._core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        owners = frozenset(ref.uid for ref in (found.metadata.owner_references or []))
        return StoredSecret(_decode(found.data), owners)

    def create(self, namespace: str, name: str, data: dict[str, str], owner: Owner) -> bool:
        """Create an owned Secret; False if one of that name exists already."""
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": MANAGED_BY,
                "ownerReferences": [owner.reference()],
            },
            "stringData": data,
        }
        try:
            self._call(self._core.create_namespaced_secret, namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def update_data(
        self, namespace: str, name: str, data: dict[str, str], previous: dict[str, str]
    ) -> None:
        """Set ``data``; keys of ``previous`` that ``data`` lacks are removed."""
        removed: dict[str, None] = {key: None for key in previous if key not in data}
        patch = {"data": removed, "stringData": data}
        self._call(self._core.patch_namespaced_secret, name, namespace, patch)

    def delete(self, namespace: str, name: str) -> bool:
        try:
            self._call(self._core.delete_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True
