"""Read, diff, write: only what the operator manages is compared, and only what differs is sent."""

from __future__ import annotations

from typing import Any

from realm_operator.diff import (
    client_update,
    covers,
    digest,
    mapper_changes,
    realm_update,
    registration_changes,
    user_profile_update,
)


def test_covers_ignores_what_keycloak_adds_and_the_order_of_sets() -> None:
    actual = {"a": 1, "extra": True, "locales": ["en", "zh-CN"], "nested": {"x": "1", "y": "2"}}
    assert covers(actual, {"a": 1, "locales": ["zh-CN", "en"], "nested": {"x": "1"}})
    assert not covers(actual, {"a": 2})
    assert not covers(actual, {"missing": None})
    assert not covers(actual, {"locales": ["zh-CN"]})
    assert not covers({"flag": 1}, {"flag": True})  # a type change is a change


def test_a_realm_update_holds_only_what_differs_and_keeps_foreign_attributes() -> None:
    desired = {
        "displayName": "浙江",
        "bruteForceProtected": True,
        "attributes": {"acr.loa.map": '{"pwd": 1}', "tongxing.io/owner": "ns/zj"},
    }
    actual = {
        "displayName": "浙江省",
        "bruteForceProtected": True,
        "attributes": {
            "acr.loa.map": '{"pwd": 2}',
            "tongxing.io/owner": "ns/zj",
            "cibaInterval": "5",
        },
    }
    assert realm_update(desired, actual) == {
        "displayName": "浙江",
        "attributes": {
            "acr.loa.map": '{"pwd": 1}',
            "tongxing.io/owner": "ns/zj",
            "cibaInterval": "5",
        },
    }
    assert realm_update(desired, {**actual, **desired}) == {}


def test_a_client_update_restores_edited_fields_over_the_whole_client() -> None:
    desired = {
        "clientId": "tongxing-gateway",
        "redirectUris": ["https://gw/callback/zj"],
        "attributes": {"pkce.code.challenge.method": "S256"},
        "protocolMappers": [{"name": "id_number"}],
    }
    actual = {
        "id": "uuid",
        "clientId": "tongxing-gateway",
        "redirectUris": ["https://evil/cb"],
        "attributes": {"pkce.code.challenge.method": "S256", "other": "kept"},
        "protocolMappers": [],
    }
    update = client_update(desired, actual)
    assert update is not None
    assert update["id"] == "uuid"
    assert update["redirectUris"] == ["https://gw/callback/zj"]
    assert update["attributes"] == {"pkce.code.challenge.method": "S256", "other": "kept"}
    assert "protocolMappers" not in update
    assert client_update(desired, {**actual, "redirectUris": ["https://gw/callback/zj"]}) is None


def test_mappers_are_matched_by_name_added_or_restored_and_others_left_alone() -> None:
    desired = [
        {"name": "id_number", "config": {"claim.name": "id_number"}},
        {"name": "name", "config": {"id.token.claim": "true"}},
    ]
    actual = [
        {"id": "m1", "name": "id_number", "config": {"claim.name": "idno"}},
        {"id": "m9", "name": "someone-elses", "config": {}},
    ]
    to_add, to_replace = mapper_changes(desired, actual)
    assert to_add == [desired[1]]
    assert to_replace == [{**desired[0], "id": "m1"}]


def test_the_user_profile_gains_missing_attributes_and_restores_edited_ones() -> None:
    id_number = {"name": "id_number", "validations": {"pattern": {"pattern": "^x$"}}}
    wanted: dict[str, Any] = {
        "attributes": [id_number],
        "groups": [{"name": "identity"}],
    }
    found: dict[str, Any] = {
        "attributes": [{"name": "username"}, {"name": "id_number", "validations": {}}],
        "groups": [{"name": "user-metadata"}],
        "unmanagedAttributePolicy": "ENABLED",
    }
    updated = user_profile_update(wanted, found)
    assert updated is not None
    assert [a["name"] for a in updated["attributes"]] == ["username", "id_number"]
    assert updated["attributes"][1] == id_number
    assert [g["name"] for g in updated["groups"]] == ["user-metadata", "identity"]
    assert updated["unmanagedAttributePolicy"] == "ENABLED"
    assert user_profile_update(wanted, updated) is None


def test_a_registration_is_compared_without_its_secret() -> None:
    desired = {"code": "zj", "issuer": "https://id/realms/zj", "client_secret": "s3cret"}
    actual = {"code": "zj", "issuer": "https://id/realms/zj", "enabled": True}
    assert registration_changes(desired, actual) == []
    assert registration_changes({**desired, "issuer": "https://other"}, actual) == ["issuer"]


def test_the_owner_the_gateway_records_covers_the_one_sent_so_nothing_is_rewritten() -> None:
    sent = {"kind": "Region", "namespace": "tongxing", "name": "zj", "uid": "u-1"}
    desired = {"code": "zj", "managed_by": sent}
    # The gateway adds the principal of the credential that wrote it.
    stored = {"code": "zj", "managed_by": {"principal": "operator", **sent}}
    assert registration_changes(desired, stored) == []
    # The same resource made again (a new uid) is written once, to record its uid.
    recreated = {"code": "zj", "managed_by": {**sent, "uid": "u-2"}}
    assert registration_changes(recreated, stored) == ["managed_by"]
    # A registration made before owners existed has none.
    assert registration_changes(desired, {"code": "zj", "managed_by": None}) == ["managed_by"]
    assert registration_changes(desired, {"code": "zj"}) == ["managed_by"]


def test_a_digest_tells_secrets_apart_without_revealing_them() -> None:
    assert digest("a" * 32) == digest("a" * 32)
    assert digest("a" * 32) != digest("b" * 32)
    assert "a" * 8 not in digest("a" * 32)
    assert digest("x").startswith("sha256:")
