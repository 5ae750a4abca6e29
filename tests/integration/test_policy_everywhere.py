"""One policy set everywhere (issue 14): a reload through one gateway reaches another gateway on
the same PostgreSQL within the poll interval, and a refused set reaches nobody.

Two (then three) real gateways, each with its own HTTP server, services and policy folder, share
one PostgreSQL database, as replicas behind one Service do. The second gateway's folder never
gets the new policy: what it enforces comes from the store.
"""

from __future__ import annotations

import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from tongxing_dev.postgres import PostgresEndpoint
from tongxing_dev.process import free_port
from werkzeug.serving import make_server

from gateway.app import create_app
from gateway.observe import Event, PolicyReloaded
from gateway.policy import POLL_INTERVAL, PersonFacts, PortalFacts, default_policy_dir
from gateway.services import Services, build_services
from gateway.settings import Settings

ADULTS_ONLY = """
@id("zj-lottery-adults-only")
@reason("lottery portals are for adults")
forbid (principal, action == Tongxing::Action::"enter", resource)
when {
  resource.sector == "lottery" &&
  !(principal has age_band && principal.age_band != "minor")
};
"""
MINOR = PersonFacts("subject-minor", "zj", "loa2", age_band="minor")
LOTTERY = PortalFacts("zj-lottery", "zj", sector="lottery")


@dataclass
class Replica:
    url: str
    token: str
    services: Services
    policy_dir: Path

    def policies(self) -> dict[str, Any]:
        answer = requests.get(f"{self.url}/admin/v1/policies", headers=self._auth(), timeout=10)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def reload(self) -> requests.Response:
        return requests.post(
            f"{self.url}/admin/v1/policies/reload", headers=self._auth(), timeout=30
        )

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def replica(tmp: Path, database_url: str, name: str) -> Iterator[Replica]:
    policy_dir = tmp / f"policies-{name}"
    shutil.copytree(default_policy_dir(), policy_dir)
    port = free_port()
    settings = Settings.model_validate(
        {
            "issuer": f"http://127.0.0.1:{port}",
            "data_dir": tmp / name,
            "database_url": database_url,
            "create_keys": True,
            "insecure_allow_http": True,
            "policy_dir": policy_dir,
            **{
                key: secrets.token_urlsafe(32)
                for key in (
                    "national_secret",
                    "pairwise_secret",
                    "admin_token",
                    "session_secret",
                    "mfa_secret",
                )
            },
        }
    )
    services = build_services(settings)
    server = make_server("127.0.0.1", port, create_app(services=services), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Replica(
            f"http://127.0.0.1:{port}",
            settings.admin_token.get_secret_value(),
            services,
            policy_dir,
        )
    finally:
        server.shutdown()
        server.server_close()
        services.close()


@pytest.fixture
def database_url(postgres: PostgresEndpoint) -> Iterator[str]:
    name = f"policy_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    yield postgres.sqlalchemy_url(name)
    postgres.drop_database(name)


def wait_for_generation(replica: Replica, generation: int) -> float:
    """Seconds until ``replica`` shows ``generation`` (fails after twice the poll interval)."""
    started = time.monotonic()
    while replica.policies()["generation"] != generation:
        assert time.monotonic() - started < 2 * POLL_INTERVAL + 2, "the reload never arrived"
        time.sleep(0.1)
    return time.monotonic() - started


def test_a_reload_on_one_gateway_is_enforced_by_the_other_within_the_poll_interval(
    tmp_path: Path, database_url: str
) -> None:
    with replica(tmp_path, database_url, "a") as a, replica(tmp_path, database_url, "b") as b:
        heard: list[Event] = []
        a.services.events.subscribe(heard.append)
        first_a, first_b = a.policies(), b.policies()
        assert first_a["generation"] == first_b["generation"] == 1
        assert first_a["digest"] == first_b["digest"]
        assert first_a["activated_by"] == "gateway start-up"
        assert b.services.policy.may_enter(MINOR, LOTTERY).allowed

        (a.policy_dir / "zj.cedar").write_text(ADULTS_ONLY, encoding="utf-8")
        reloaded = a.reload()
        assert reloaded.status_code == 200, reloaded.text
        new = reloaded.json()
        assert (new["generation"], new["activated_by"]) == (2, "platform")
        assert new["digest"] != first_a["digest"]
        assert heard == [
            PolicyReloaded(
                principal="platform", digest=new["digest"], outcome="activated", generation=2
            )
        ]

        took = wait_for_generation(b, 2)
        print(f"the reload reached the other gateway in {took:.2f} s")
        assert b.policies()["digest"] == new["digest"]
        assert b.services.policy.info.generation == 2  # what metrics read
        assert not (b.policy_dir / "zj.cedar").exists()  # its own files never changed
        denied = b.services.policy.may_enter(MINOR, LOTTERY)
        assert not denied.allowed
        assert denied.policy_ids == ("zj-lottery-adults-only",)

        # A refused set is refused whole: nothing written, nobody changes.
        (a.policy_dir / "broken.cedar").write_text("permit (", encoding="utf-8")
        refused = a.reload()
        assert refused.status_code == 422
        assert heard[-1].outcome == "refused"  # type: ignore[attr-defined]
        assert a.services.store.policy_set_generation() == 2
        time.sleep(POLL_INTERVAL + 0.5)
        assert b.policies()["generation"] == 2
        assert not b.services.policy.may_enter(MINOR, LOTTERY).allowed

        # A gateway that starts now takes the store's set, not the files it was given.
        with replica(tmp_path, database_url, "c") as c:
            assert c.policies()["generation"] == 2
            assert c.policies()["digest"] == new["digest"]
            assert not c.services.policy.may_enter(MINOR, LOTTERY).allowed
