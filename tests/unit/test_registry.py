"""Region and portal models refuse what the admin API must answer with a 400."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.errors import RegionSecretUnreadable
from gateway.registry import (
    CACHE_SECONDS,
    ManagedBy,
    Portal,
    Region,
    Registry,
    hash_secret,
    pairwise_sector_errors,
    sector_document_errors,
)
from gateway.sealing import RegionSecretSealer
from gateway.store import RegistryKind, RevisionConflictError, SqlStore

NOW = datetime.datetime(2025, 3, 1, 8, 0, tzinfo=datetime.UTC)
SEALER = RegionSecretSealer.from_keys(["k" * 32], fallback="f" * 32)
NAMES = {"zh": "浙江政务服务网", "en": "Zhejiang Government Services"}


def portal(**overrides: Any) -> Portal:
    data: dict[str, Any] = {
        "client_id": "zj-portal",
        "names": NAMES,
        "owner": "zj",
        "redirect_uris": ["https://portal.zj.example.cn/callback"],
        "client_secret_hash": hash_secret("s" * 43),
    }
    data.update(overrides)
    return Portal.model_validate(data)


def region(**overrides: Any) -> Region:
    data: dict[str, Any] = {
        "code": "zj",
        "names": {"zh": "浙江", "en": "Zhejiang"},
        "kind": "province",
        "issuer": "https://idp.zj.example.cn/realms/zj/",
        "client_id": "tongxing",
        "client_secret": "upstream-secret",
    }
    data.update(overrides)
    return Region.model_validate(data)


@pytest.mark.parametrize(
    "uri",
    [
        "https://*.zj.example.cn/callback",
        "https://portal.zj.example.cn/callback#frag",
        "https://user@portal.zj.example.cn/callback",
        "https://a@b@portal.zj.example.cn/callback",
        "http://portal.zj.example.cn/callback",
        "javascript:alert(1)",
        "/relative/callback",
        "https://portal.zj.example.cn/a/../callback",
        "https://portal.zj.example.cn/a/..;/callback",
        "https://portal.zj.example.cn/call back",
    ],
)
def test_a_redirect_uri_that_is_not_exact_and_safe_is_refused(uri: str) -> None:
    with pytest.raises(ValidationError, match="redirect URI"):
        portal(redirect_uris=[uri])


def test_loopback_http_redirect_uris_are_allowed() -> None:
    assert portal(redirect_uris=["http://127.0.0.1:8080/cb"]).redirect_uris == [
        "http://127.0.0.1:8080/cb"
    ]


def test_field_errors_name_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        portal(client_id="x", owner="Not A Code")
    fields = {error["loc"][0] for error in info.value.errors()}
    assert fields == {"client_id", "owner"}


def test_secret_methods_need_a_secret_and_private_key_jwt_needs_keys() -> None:
    with pytest.raises(ValidationError, match="needs a client secret"):
        portal(client_secret_hash=None)
    with pytest.raises(ValidationError, match="needs jwks"):
        portal(token_endpoint_auth_method="private_key_jwt", jwks={"keys": []})


def test_public_clients_cannot_use_client_credentials() -> None:
    with pytest.raises(ValidationError, match="public client"):
        portal(token_endpoint_auth_method="none", grant_types=["client_credentials"])


def test_the_granted_scope_is_the_requested_one_less_what_is_not_registered() -> None:
    registered = portal(scopes=["openid", "profile"])
    asked = "openid profile phone payments:write openid"
    assert registered.granted_scope(asked) == "openid profile"
    assert registered.granted_scope(None) == ""
    # offline_access comes with the refresh_token grant, not with the scopes list
    assert registered.granted_scope("openid offline_access") == "openid offline_access"
    no_refresh = portal(grant_types=["authorization_code"])
    assert no_refresh.granted_scope("openid offline_access") == "openid"


def test_the_pairwise_sector_is_the_one_host_of_the_redirect_uris() -> None:
    secret = b"p" * 32
    one_host = portal(
        subject_type="pairwise",
        redirect_uris=["https://a.example.cn/cb", "https://a.example.cn/other"],
    )
    assert one_host.sector_identifier == "a.example.cn"
    assert pairwise_sector_errors(one_host) == []
    victim = portal(client_id="victim", subject_type="pairwise", redirect_uris=["https://v.cn/cb"])
    # A portal that lists the victim's host first (stored before registration refused it).
    thief = portal(
        client_id="thief",
        subject_type="pairwise",
        redirect_uris=["https://v.cn/cb", "https://thief.cn/cb"],
    )
    assert thief.subject_for("person", secret) != victim.subject_for("person", secret)
    assert thief.sector_identifier == "client:thief"
    errors = pairwise_sector_errors(thief)
    assert [e["field"] for e in errors] == ["redirect_uris"]
    assert "one host" in errors[0]["message"]
    assert pairwise_sector_errors(thief.model_copy(update={"subject_type": "public"})) == []


def test_a_sector_identifier_uri_names_the_sector_by_its_host() -> None:
    """OIDC Core §8.1: with a sector_identifier_uri the sector is its host, whatever the hosts
    of the redirect URIs; the one-host rule is then replaced by the document's check."""
    secret = b"p" * 32
    sector = "https://sectors.zj.example.cn:8443/zwfw.json"
    a = portal(client_id="portal-a", subject_type="pairwise", sector_identifier_uri=sector)
    b = portal(
        client_id="portal-b",
        subject_type="pairwise",
        sector_identifier_uri=sector,
        redirect_uris=["https://b.example.cn/cb", "https://m.b.example.cn/cb"],
    )
    assert a.sector_identifier == b.sector_identifier == "sectors.zj.example.cn"
    assert a.subject_for("person", secret) == b.subject_for("person", secret)
    assert pairwise_sector_errors(b) == []
    assert portal(subject_type="pairwise").subject_for("person", secret) != a.subject_for(
        "person", secret
    )


@pytest.mark.parametrize(
    "uri",
    ["javascript:alert(1)", "https://user@sectors.example.cn/x", "https://sectors.example.cn/#f"],
)
def test_a_sector_identifier_uri_must_be_an_absolute_url(uri: str) -> None:
    with pytest.raises(ValidationError, match="sector_identifier_uri"):
        portal(sector_identifier_uri=uri)


@pytest.mark.parametrize(
    ("document", "missing"),
    [
        (["https://b.example.cn/cb", "https://m.b.example.cn/cb", "https://other.cn/"], None),
        (["https://b.example.cn/cb"], "https://m.b.example.cn/cb"),
        (["https://b.example.cn/cb/", "https://M.b.example.cn/cb"], "https://b.example.cn/cb"),
        ({"redirect_uris": ["https://b.example.cn/cb"]}, "JSON array"),
        (["https://b.example.cn/cb", 7], "JSON array"),
        ("https://b.example.cn/cb", "JSON array"),
    ],
)
def test_the_sector_document_must_list_every_redirect_uri_exactly(
    document: Any, missing: str | None
) -> None:
    b = portal(
        subject_type="pairwise",
        sector_identifier_uri="https://sectors.example.cn/b.json",
        redirect_uris=["https://b.example.cn/cb", "https://m.b.example.cn/cb"],
    )
    errors = sector_document_errors(b, document)
    if missing is None:
        assert errors == []
    else:
        assert [e["field"] for e in errors] == ["sector_identifier_uri"]
        assert missing in errors[0]["message"]


def test_secret_check_is_against_the_hash() -> None:
    registered = portal()
    assert registered.check_secret("s" * 43)
    assert not registered.check_secret("s" * 42)


def test_region_issuer_is_normalised_and_needs_openid() -> None:
    assert region().issuer == "https://idp.zj.example.cn/realms/zj"
    with pytest.raises(ValidationError, match="openid"):
        region(scopes=["profile"])
    with pytest.raises(ValidationError, match="code"):
        region(code="ZJ!")


def test_region_secret_is_hidden_in_repr_and_sealed_in_the_document() -> None:
    upstream = region()
    assert "upstream-secret" not in repr(upstream)
    document = upstream.document(SEALER)
    assert "client_secret" not in document
    assert "upstream-secret" not in json.dumps(document)
    assert Region.from_document("zj", document, SEALER) == upstream


def test_a_registration_has_no_owner_until_one_is_recorded() -> None:
    assert portal().managed_by is None
    assert region().managed_by is None
    owned = portal(managed_by={"principal": "operator", "kind": "Portal", "namespace": "zj-gov"})
    assert owned.managed_by == ManagedBy(principal="operator", kind="Portal", namespace="zj-gov")
    assert region(managed_by={"principal": "platform"}).document(SEALER)["managed_by"] == {
        "principal": "platform",
        "kind": None,
        "namespace": None,
        "name": None,
        "uid": None,
    }


@pytest.mark.parametrize(
    ("managed_by", "field"),
    [
        ({"kind": "Portal"}, "principal"),
        ({"principal": "Platform!"}, "principal"),
        ({"principal": "operator", "kind": "Secret"}, "kind"),
        ({"principal": "operator", "namespace": "-bad-"}, "namespace"),
        ({"principal": "operator", "name": "a/b"}, "name"),
        ({"principal": "operator", "uid": "has space"}, "uid"),
        ({"principal": "operator", "token": "x"}, "token"),
    ],
)
def test_an_owner_is_validated_field_by_field(managed_by: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        portal(managed_by=managed_by)
    assert [error["loc"] for error in info.value.errors()] == [("managed_by", field)]


def test_the_same_owner_ignores_the_uid() -> None:
    owner = ManagedBy(principal="operator", kind="Region", namespace="ns", name="zj", uid="1")
    assert owner.same_owner(owner.model_copy(update={"uid": "2"}))
    assert not owner.same_owner(owner.model_copy(update={"name": "sh"}))
    assert not owner.same_owner(owner.model_copy(update={"principal": "platform"}))


# --- the registry's short-lived copy of registrations --------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    yield store
    store.close()


def counting_reads(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    real = store.get_document

    def get_document(kind: RegistryKind, key: str) -> Any:
        reads.append(key)
        return real(kind, key)

    monkeypatch.setattr(store, "get_document", get_document)
    return reads


def test_a_portal_looked_up_again_soon_is_answered_without_the_store(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    registry = Registry(store, sealer=SEALER, clock=clock)
    registry.put_portal(portal(), NOW)
    reads = counting_reads(store, monkeypatch)
    first = registry.portal("zj-portal")
    clock.now += CACHE_SECONDS - 0.1
    assert registry.portal("zj-portal") == first
    assert reads == ["zj-portal"]
    clock.now += 0.2
    assert registry.portal("zj-portal") == first
    assert reads == ["zj-portal", "zj-portal"]


def test_a_write_through_this_registry_is_seen_at_once(store: SqlStore) -> None:
    registry = Registry(store, sealer=SEALER, clock=Clock())
    registry.put_portal(portal(), NOW)
    assert registry.portal("zj-portal") is not None
    registry.put_portal(portal(enabled=False), NOW)
    found = registry.portal("zj-portal")
    assert found is not None
    assert found.enabled is False
    registry.put_region(region(), NOW)
    assert registry.region("zj") is not None
    assert registry.delete_region("zj") is True
    assert registry.region("zj") is None
    assert registry.delete_portal("zj-portal") is True
    assert registry.portal("zj-portal") is None


def test_a_write_through_another_replica_is_seen_after_the_cache_time(store: SqlStore) -> None:
    clock = Clock()
    here, elsewhere = (
        Registry(store, sealer=SEALER, clock=clock),
        Registry(store, sealer=SEALER, clock=clock),
    )
    assert here.portal("zj-portal") is None  # unknown keys are not remembered
    elsewhere.put_portal(portal(), NOW)
    assert here.portal("zj-portal") is not None
    elsewhere.put_portal(portal(enabled=False), NOW)
    cached = here.portal("zj-portal")
    assert cached is not None
    assert cached.enabled is True
    clock.now += CACHE_SECONDS
    fresh = here.portal("zj-portal")
    assert fresh is not None
    assert fresh.enabled is False


def test_a_lookup_that_raced_a_local_write_does_not_keep_what_it_read(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry(store, sealer=SEALER, clock=Clock())
    registry.put_portal(portal(), NOW)
    real = store.get_document

    def get_document(kind: RegistryKind, key: str) -> Any:
        found = real(kind, key)  # the old registration is read ...
        registry.put_portal(portal(enabled=False), NOW)  # ... and replaced before it is kept
        return found

    monkeypatch.setattr(store, "get_document", get_document)
    stale = registry.portal("zj-portal")
    assert stale is not None
    assert stale.enabled is True
    monkeypatch.setattr(store, "get_document", real)
    current = registry.portal("zj-portal")
    assert current is not None
    assert current.enabled is False


# --- writes against the revision that was read ---------------------------------------------------


def test_a_write_or_delete_names_the_revision_it_read(store: SqlStore) -> None:
    registry = Registry(store, sealer=SEALER, clock=Clock())
    registry.put_region(region(), NOW, expected_revision=0)
    read = registry.stored_region("zj")
    assert read is not None
    assert (read.value, read.revision) == (region(), 1)
    registry.put_region(region(enabled=False), NOW, expected_revision=read.revision)
    with pytest.raises(RevisionConflictError):
        registry.put_region(region(), NOW, expected_revision=read.revision)
    with pytest.raises(RevisionConflictError):
        registry.delete_region("zj", expected_revision=read.revision)
    found = registry.region("zj")
    assert found is not None
    assert found.enabled is False
    assert registry.delete_region("zj", expected_revision=2) is True
    assert registry.stored_region("zj") is None


def test_a_create_only_write_refuses_an_existing_portal(store: SqlStore) -> None:
    registry = Registry(store, sealer=SEALER, clock=Clock())
    _, created = registry.put_portal(portal(), NOW, expected_revision=0)
    assert created is True
    with pytest.raises(RevisionConflictError):
        registry.put_portal(portal(enabled=False), NOW, expected_revision=0)
    stored = registry.stored_portal("zj-portal")
    assert stored is not None
    assert (stored.value.enabled, stored.revision) == (True, 1)
    with pytest.raises(RevisionConflictError):
        registry.delete_portal("zj-portal", expected_revision=2)
    assert registry.delete_portal("zj-portal", expected_revision=1) is True


def test_the_stored_registration_is_read_past_the_copy(store: SqlStore) -> None:
    clock = Clock()
    here, elsewhere = (
        Registry(store, sealer=SEALER, clock=clock),
        Registry(store, sealer=SEALER, clock=clock),
    )
    elsewhere.put_portal(portal(), NOW)
    assert here.portal("zj-portal") is not None  # now in here's copy
    elsewhere.put_portal(portal(enabled=False), NOW)
    fresh = here.stored_portal("zj-portal")
    assert fresh is not None
    assert (fresh.value.enabled, fresh.revision) == (False, 2)


# --- region client secrets sealed at rest (issue 14, THREAT_MODEL row 8) -----------------------


def test_a_region_row_from_before_sealing_is_read_and_sealed_by_a_reseal(store: SqlStore) -> None:
    clear = {**region().model_dump(mode="json"), "client_secret": "upstream-secret"}
    store.put_document(RegistryKind.REGION, "zj", clear, NOW)
    registry = Registry(store, sealer=SEALER, cache_seconds=0)
    found = registry.region("zj")
    assert found is not None
    assert found.client_secret.get_secret_value() == "upstream-secret"

    report = registry.reseal_regions(NOW)
    assert (report.resealed, report.current, report.unreadable) == (["zj"], [], [])
    row = store.get_document(RegistryKind.REGION, "zj")
    assert row is not None
    assert "upstream-secret" not in json.dumps(row.document)
    assert registry.region("zj") == found
    assert registry.reseal_regions(NOW).current == ["zj"]  # nothing left to do


def test_a_sealed_secret_copied_to_another_region_does_not_open(store: SqlStore) -> None:
    registry = Registry(store, sealer=SEALER, cache_seconds=0)
    registry.put_region(region(), NOW)
    registry.put_region(region(code="sh", client_secret="sh-secret"), NOW)
    zj = store.get_document(RegistryKind.REGION, "zj")
    sh = store.get_document(RegistryKind.REGION, "sh")
    assert zj is not None
    assert sh is not None
    stolen = {**sh.document, "client_secret_sealed": zj.document["client_secret_sealed"]}
    store.put_document(RegistryKind.REGION, "sh", stolen, NOW)
    with pytest.raises(RegionSecretUnreadable):
        registry.region("sh")
    assert registry.reseal_regions(NOW).unreadable == ["sh"]


def test_a_registry_without_a_sealer_writes_no_region() -> None:
    with pytest.raises(ValueError, match="sealer"):
        Registry(_NoStore()).put_region(region(), NOW)  # type: ignore[arg-type]


class _NoStore:
    def put_document(self, *_: Any, **__: Any) -> None:
        raise AssertionError("nothing may be written without a sealer")
