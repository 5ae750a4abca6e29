"""Claims asked for with a value (OIDC Core §5.5.1, §5.5.1.1), without sockets: ``sub`` binds
the sign-in to one person, ``acr`` is a level like ``acr_values`` (essential: a requirement),
and an essential claim with values never leaves with another value (gateway.verified)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_signin import (  # type: ignore[import-not-found]  # test_signin.py's world
    World,
    come_back,
    keys,  # noqa: F401 - a fixture
    query,
    redeemed_claims,
    request,
    services,  # noqa: F401 - a fixture
    signed_in,
    to_region,
    world,  # noqa: F401 - a fixture
)

from gateway.assurance import RequestedAcr, reported_acr, requested_acr
from gateway.signin import ChooseRegion, ToPortal
from gateway.tokens import User
from gateway.verified import ClaimsRequestError, IndividualRequest, parse_claims_request


def claims(**members: Any) -> str:
    return parse_claims_request(json.dumps(members)).text


# --- parsing -----------------------------------------------------------------------------------


def test_values_essential_sub_and_acr_are_kept_per_target() -> None:
    parsed = parse_claims_request(
        json.dumps(
            {
                "id_token": {
                    "sub": {"value": "abc"},
                    "acr": {"essential": True, "values": ["loa2", "loa3"]},
                    "name": {"essential": True, "value": "张三"},
                    "email": None,
                    "phone_number": {"essential": False},
                },
                "userinfo": {"gender": {"values": ["female"]}},
            }
        )
    )
    assert parsed.subject() == "abc"
    assert parsed.acr() == IndividualRequest(True, ("loa2", "loa3"))
    assert parsed.individual["id_token"]["name"] == IndividualRequest(True, ("张三",))
    assert "email" not in parsed.individual["id_token"]  # null asks for nothing particular
    assert "phone_number" not in parsed.individual["id_token"]
    assert parsed.individual["userinfo"]["gender"] == IndividualRequest(False, ("female",))
    assert parse_claims_request(parsed.text) == parsed
    assert parse_claims_request(json.dumps({"userinfo": {"sub": {"value": "u"}}})).subject() == "u"
    assert parse_claims_request(json.dumps({"id_token": {"sub": None}})).subject() is None
    assert parse_claims_request(json.dumps({"userinfo": {"acr": {"value": "loa2"}}})).acr() is None


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ({"id_token": {"sub": {"value": 7}}}, "non-empty text"),
        ({"id_token": {"sub": {"value": ""}}}, "non-empty text"),
        ({"id_token": {"sub": {"values": ["a", "b"]}}}, "exactly one subject"),
        ({"id_token": {"sub": {"values": []}}}, "exactly one subject"),
        ({"id_token": {"sub": {"value": "a"}}, "userinfo": {"sub": {"value": "b"}}}, "differ"),
        ({"id_token": {"acr": {"essential": True, "values": []}}}, "empty"),
        ({"id_token": {"acr": {"values": ["loa2", 3]}}}, "non-empty text"),
        ({"id_token": {"name": {"value": "a", "values": ["a"]}}}, "both value and values"),
    ],
)
def test_a_sub_or_acr_value_that_binds_nothing_clearly_is_invalid(
    members: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ClaimsRequestError, match=problem):
        parse_claims_request(json.dumps(members))


def test_only_an_essential_request_with_values_filters_what_leaves() -> None:
    parsed = parse_claims_request(
        json.dumps(
            {
                "id_token": {
                    "name": {"essential": True, "value": "张三"},
                    "phone_number_verified": {"essential": True, "value": True},
                    "gender": {"value": "female"},
                }
            }
        )
    )
    assert parsed.accepts("id_token", "name", "张三")
    assert not parsed.accepts("id_token", "name", "李四")
    assert not parsed.accepts("id_token", "phone_number_verified", 1)  # JSON, not Python, equality
    assert parsed.accepts("id_token", "phone_number_verified", True)
    assert parsed.accepts("id_token", "gender", "male")  # voluntary: ignored (§5.5.1)
    assert parsed.accepts("userinfo", "name", "李四")  # asked of the ID token only


# --- acr: acr_values and the claims parameter together ----------------------------------------


def test_the_stricter_of_acr_values_and_the_acr_claim_must_be_reached() -> None:
    essential = IndividualRequest(True, ("loa2", "loa3"))
    voluntary = IndividualRequest(False, ("loa3",))
    assert requested_acr("loa1", None) == RequestedAcr("loa1")
    assert requested_acr(None, essential) == RequestedAcr("loa2")  # any listed satisfies
    assert requested_acr("loa3", essential) == RequestedAcr("loa3")  # acr_values stricter
    assert requested_acr("loa1 loa2", voluntary) == RequestedAcr("loa3")  # the claim stricter
    assert requested_acr("loa2", IndividualRequest(True, ("urn:x",))) == RequestedAcr(
        "loa2", unmeetable=True
    )
    assert requested_acr("loa2", IndividualRequest(False, ("urn:x",))) == RequestedAcr("loa2")


def test_an_essential_acr_is_reported_as_one_of_its_values_never_above_the_session() -> None:
    assert reported_acr("loa2", IndividualRequest(True, ("loa1",))) == "loa1"
    assert reported_acr("loa3", IndividualRequest(True, ("loa1", "loa2"))) == "loa2"
    assert reported_acr("loa2", IndividualRequest(True, ("loa2", "loa3"))) == "loa2"
    assert reported_acr("loa2", IndividualRequest(False, ("loa1",))) == "loa2"  # voluntary
    assert reported_acr("loa1", IndividualRequest(True, ("loa3",))) == "loa1"  # never more
    assert reported_acr(None, IndividualRequest(True, ("loa1",))) is None


# --- the sign-in -------------------------------------------------------------------------------


def test_a_sub_value_is_answered_only_for_that_person(world: World) -> None:  # noqa: F811
    """OIDC Core §5.5.1: an SSO session of someone else does not answer; a sign-in at the
    region that ends with someone else is login_required, never a code for them."""
    session_id = signed_in(world)
    session = world.services.sessions.find(session_id, world.clock())
    assert session is not None
    portal = world.services.registry.portal("portal-a")
    assert portal is not None
    own = world.signin.tokens.subject_for(portal, session.subject)
    someone = claims(id_token={"sub": {"value": "someone-else"}})
    assert isinstance(world.signin.begin(request(claims=someone), session_id), ChooseRegion)
    none = world.signin.begin(request(claims=someone, prompt=("none",)), session_id)
    assert isinstance(none, ToPortal)
    assert none.error == "login_required"
    same = world.signin.begin(request(claims=claims(id_token={"sub": {"value": own}})), session_id)
    assert isinstance(same, ToPortal)
    assert same.error is None
    in_userinfo = claims(userinfo={"sub": {"value": "someone-else"}})
    assert isinstance(world.signin.begin(request(claims=in_userinfo), session_id), ChooseRegion)
    # The fresh sign-in path: the region signs in someone the request does not name.
    completion = come_back(world, to_region(world, claims=someone))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.error == "login_required"
    assert "code" not in query(completion.answer.url)
    completion = come_back(world, to_region(world, claims=claims(id_token={"sub": {"value": own}})))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.error is None


def test_an_essential_acr_is_a_requirement_like_acr_values(world: World) -> None:  # noqa: F811
    world.put_region("zj", acr_mapping={"kc-pwd": "loa1", "kc-sms": "loa2"})
    world.acr = "kc-pwd"
    essential = claims(id_token={"acr": {"essential": True, "values": ["loa3"]}})
    completion = come_back(world, to_region(world, claims=essential))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.error == "unmet_authentication_requirements"
    unknown = claims(id_token={"acr": {"essential": True, "value": "urn:unknown"}})
    completion = come_back(world, to_region(world, claims=unknown, prompt=("login",)))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.error == "unmet_authentication_requirements"
    voluntary_unknown = claims(id_token={"acr": {"value": "urn:unknown"}})
    completion = come_back(world, to_region(world, claims=voluntary_unknown, prompt=("login",)))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.error is None
    # The region is asked for the level the claims request names, as for acr_values.
    world.asked.clear()
    to_region(world, claims=claims(id_token={"acr": {"essential": True, "values": ["loa2"]}}))
    assert world.asked[-1]["acr_values"] == ("kc-sms",)
    world.acr = "kc-sms"
    loa1_ok = claims(id_token={"acr": {"essential": True, "values": ["loa1"]}})
    completion = come_back(world, to_region(world, claims=loa1_ok, acr_values="loa2"))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.error is None
    assert redeemed_claims(world, completion.answer)["acr"] == "loa2"  # the session's level


def test_an_essential_claim_with_another_value_is_left_out_never_replaced(
    world: World,  # noqa: F811
) -> None:
    """OIDC Core §5.5.1: the person's name is 张三; an essential request for 李四 gets no
    name at all, a voluntary one gets the person's own, a matching one gets it."""
    session_id = signed_in(world)
    session = world.services.sessions.find(session_id, world.clock())
    assert session is not None
    portal = world.services.registry.portal("portal-a")
    assert portal is not None
    tokens = world.signin.tokens

    def released(name: dict[str, Any], target: str = "id_token") -> dict[str, Any]:
        user = User.from_session(session, claims(id_token={"name": name}))
        out: dict[str, Any] = tokens.user_claims(portal, user, "openid profile", target)
        return out

    assert "name" not in released({"essential": True, "value": "李四"})
    assert "name" not in released({"essential": True, "values": ["李四", "王五"]})
    assert released({"essential": True, "values": ["李四", "张三"]})["name"] == "张三"
    assert released({"value": "李四"})["name"] == "张三"  # voluntary: ignored
    assert released({"essential": True, "value": "李四"}, "userinfo")["name"] == "张三"
