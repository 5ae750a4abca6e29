"""Who may do what in the admin API, decided without HTTP (gateway.admin.access, .registrations).

THREAT_MODEL row 1: a tenant, through the operator, changes only the registrations it owns.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.admin.access import (
    Operation,
    Principal,
    Principals,
    Role,
    authorize,
    claimed_owner,
    levels_above_ceiling,
    may_delete,
    may_replace,
    may_see,
    resource_of,
    roles_for,
)
from gateway.admin.registrations import Registrations
from gateway.errors import TongxingError
from gateway.registry import ManagedBy, Registry, Stored
from gateway.settings import Settings
from gateway.store import RegistryKind, SqlStore

NOW = datetime.datetime(2025, 3, 1, 8, 0, tzinfo=datetime.UTC)
PLATFORM = Principal("platform", Role.PLATFORM)
OPERATOR = Principal("operator", Role.OPERATOR)
READER = Principal("audit", Role.READER)
RESOURCE = {"kind": "Portal", "namespace": "zj-gov", "name": "portal", "uid": "uid-1"}
OWNED = ManagedBy.model_validate({"principal": "operator", **RESOURCE})
PORTAL = {
    "names": {"zh": "浙江政务服务网", "en": "Zhejiang services"},
    "owner": "zj",
    "redirect_uris": ["https://portal.zj.example.cn/callback"],
}


def settings(**extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "issuer": "https://tongxing.example.cn",
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": "p" * 32,
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
            **extra,
        }
    )


def refusal(error: pytest.ExceptionInfo[TongxingError]) -> tuple[int, str, list[str]]:
    fields = error.value.details.get("fields", [])
    assert isinstance(fields, list)
    return error.value.status, error.value.code, [f["field"] for f in fields]


# --- principals and roles ------------------------------------------------------------------------


def test_each_token_is_its_principal() -> None:
    reader_token = "r" * 40
    principals = Principals.from_settings(
        settings(
            operator_token="o" * 32,
            admin_clients=[
                {
                    "name": "audit",
                    "role": "reader",
                    "token_sha256": hashlib.sha256(reader_token.encode()).hexdigest().upper(),
                }
            ],
        )
    )
    assert principals.authenticate("p" * 32) == PLATFORM
    assert principals.authenticate("o" * 32) == OPERATOR
    assert principals.authenticate(reader_token) == READER
    assert principals.authenticate("x" * 32) is None
    assert principals.authenticate("") is None


def test_without_an_operator_token_nothing_is_the_operator() -> None:
    principals = Principals.from_settings(settings())
    assert principals.authenticate("o" * 32) is None


def test_a_short_token_never_authenticates_whatever_hash_is_configured() -> None:
    short = "s" * 31
    principals = Principals([(hashlib.sha256(short.encode()).hexdigest(), PLATFORM)])
    assert principals.authenticate(short) is None


@pytest.mark.parametrize(
    ("operation", "roles"),
    [
        (Operation.READ_REGISTRATIONS, ["platform", "operator", "reader"]),
        (Operation.WRITE_REGISTRATIONS, ["platform", "operator"]),
        (Operation.READ_POLICIES, ["platform", "reader"]),
        (Operation.RELOAD_POLICIES, ["platform"]),
    ],
)
def test_the_roles_of_each_operation(operation: Operation, roles: list[str]) -> None:
    assert roles_for(operation) == roles
    for principal in (PLATFORM, OPERATOR, READER):
        if principal.role.value in roles:
            authorize(principal, operation)
        else:
            with pytest.raises(TongxingError) as refused:
                authorize(principal, operation)
            assert (refused.value.status, refused.value.code) == (403, "insufficient_scope")


# --- owners ---------------------------------------------------------------------------------------


def test_the_principal_always_comes_from_the_credential() -> None:
    claimed = claimed_owner(OPERATOR, {**RESOURCE, "principal": "platform"}, None)
    assert claimed == OWNED
    by_platform = claimed_owner(PLATFORM, {"principal": "operator"}, None)
    assert by_platform == ManagedBy(principal="platform")


def test_an_operator_names_kind_namespace_name_and_uid() -> None:
    for body in (None, "zj-gov/portal", {}, {**RESOURCE, "uid": ""}):
        with pytest.raises(TongxingError) as refused:
            claimed_owner(OPERATOR, body, None)
        assert refusal(refused) == (400, "invalid_request", ["managed_by"])
    with pytest.raises(TongxingError) as bad:
        claimed_owner(OPERATOR, {**RESOURCE, "namespace": "Not A Namespace"}, None)
    assert refusal(bad) == (400, "invalid_request", ["managed_by.namespace"])


def test_a_platform_caller_without_managed_by_keeps_its_own_recorded_owner() -> None:
    own = ManagedBy(principal="platform", kind="Region", namespace="ns", name="zj", uid="u")
    assert claimed_owner(PLATFORM, None, own) == own
    assert claimed_owner(PLATFORM, None, OWNED) == ManagedBy(principal="platform")
    assert claimed_owner(PLATFORM, None, None) == ManagedBy(principal="platform")


def test_the_same_owner_is_principal_kind_namespace_and_name_not_the_uid() -> None:
    recreated = OWNED.model_copy(update={"uid": "uid-2"})
    assert may_replace(OPERATOR, OWNED, recreated)
    for other in (
        OWNED.model_copy(update={"namespace": "tenant"}),
        OWNED.model_copy(update={"name": "intruder"}),
        OWNED.model_copy(update={"kind": "Region"}),
        OWNED.model_copy(update={"principal": "platform"}),
    ):
        assert not may_replace(OPERATOR, OWNED, other)
        assert not may_replace(PLATFORM, OWNED, other)


def test_only_the_platform_adopts_a_registration_without_an_owner() -> None:
    assert may_replace(PLATFORM, None, ManagedBy(principal="platform"))
    assert not may_replace(OPERATOR, None, OWNED)


def test_an_operator_reads_only_its_own_and_the_named_resources() -> None:
    other_resource = OWNED.model_copy(update={"namespace": "tenant"})
    assert may_see(OPERATOR, OWNED, None)
    assert may_see(OPERATOR, OWNED, OWNED)
    assert not may_see(OPERATOR, OWNED, other_resource)
    assert not may_see(OPERATOR, ManagedBy(principal="platform"), None)
    assert not may_see(OPERATOR, None, None)
    assert may_see(READER, OWNED, None)
    assert may_see(PLATFORM, None, None)


def test_an_operator_deletes_only_the_named_resources_and_the_platform_anything() -> None:
    assert may_delete(OPERATOR, OWNED, OWNED.model_copy(update={"uid": "new"}))
    assert not may_delete(OPERATOR, OWNED, OWNED.model_copy(update={"name": "loser"}))
    assert not may_delete(OPERATOR, ManagedBy(principal="platform"), OWNED)
    assert not may_delete(OPERATOR, None, OWNED)
    with pytest.raises(TongxingError) as unnamed:
        may_delete(OPERATOR, OWNED, None)
    assert refusal(unnamed) == (400, "invalid_request", ["managed_by"])
    assert may_delete(PLATFORM, OWNED, None)
    assert may_delete(PLATFORM, None, None)


def test_the_resource_named_in_a_query_needs_kind_namespace_and_name() -> None:
    assert resource_of(OPERATOR, {}) is None
    assert resource_of(OPERATOR, {**RESOURCE, "principal": "platform"}) == OWNED
    with pytest.raises(TongxingError) as partial:
        resource_of(OPERATOR, {"uid": "uid-1"})
    assert "namespace" in str(partial.value.details)


def test_levels_above_the_ceiling_are_named_by_their_acr() -> None:
    mapping: dict[str, Any] = {"pwd": "loa1", "otp": "loa2", "face": "loa3"}
    assert levels_above_ceiling(mapping, "loa3") == []
    assert [f["field"] for f in levels_above_ceiling(mapping, "loa1")] == [
        "acr_mapping.otp",
        "acr_mapping.face",
    ]
    assert levels_above_ceiling(mapping, "loa2") == [
        {
            "field": "acr_mapping.face",
            "message": "loa3 is above the ceiling loa2 the platform set for this region",
        }
    ]


# --- the service over a real store --------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    yield store
    store.close()


def test_an_owner_check_that_a_concurrent_write_overtook_changes_nothing(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry(store)
    registrations = Registrations(registry, lambda _code: "loa2")
    written = registrations.put_portal(
        OPERATOR, "zj-portal", {**PORTAL, "managed_by": RESOURCE}, NOW
    )
    assert written.client_secret is not None
    read = registry.stored_portal("zj-portal")
    assert read is not None
    # The owner replaces the portal between another request's read and its write.
    registrations.put_portal(OPERATOR, "zj-portal", {**PORTAL, "managed_by": RESOURCE}, NOW)
    current = store.get_document(RegistryKind.PORTAL, "zj-portal")

    def stale(_client_id: str) -> Stored[Any]:
        return read

    monkeypatch.setattr(registry, "stored_portal", stale)
    recreated = {**RESOURCE, "uid": "uid-2"}
    with pytest.raises(TongxingError) as changed:
        registrations.put_portal(OPERATOR, "zj-portal", {**PORTAL, "managed_by": recreated}, NOW)
    assert refusal(changed) == (409, "registration_taken", ["client_id"])
    with pytest.raises(TongxingError) as not_deleted:
        registrations.delete_portal(OPERATOR, "zj-portal", RESOURCE)
    assert refusal(not_deleted) == (409, "registration_taken", ["client_id"])
    assert store.get_document(RegistryKind.PORTAL, "zj-portal") == current


def test_an_intruder_never_gets_the_owners_secret_hash(store: SqlStore) -> None:
    registrations = Registrations(Registry(store), lambda _code: "loa2")
    registrations.put_portal(OPERATOR, "zj-portal", {**PORTAL, "managed_by": RESOURCE}, NOW)
    before = store.get_document(RegistryKind.PORTAL, "zj-portal")
    intruder = {**RESOURCE, "namespace": "tenant"}
    with pytest.raises(TongxingError) as taken:
        registrations.put_portal(OPERATOR, "zj-portal", {**PORTAL, "managed_by": intruder}, NOW)
    assert refusal(taken) == (409, "registration_taken", ["client_id"])
    assert "client_secret_hash" not in str(taken.value.details)
    assert store.get_document(RegistryKind.PORTAL, "zj-portal") == before
