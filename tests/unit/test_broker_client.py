"""The region client: authorization URLs, callback checks before any code is redeemed, and the
normalised identity. No sockets: the cache is given its metadata."""

from __future__ import annotations

import base64
import datetime
import hashlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from gateway.broker.client import (
    LoginTransaction,
    RegionClient,
    UpstreamIdentity,
    identity_from_claims,
)
from gateway.broker.errors import (
    BrokerError,
    CallbackInvalid,
    IdentityNumberInvalid,
    IdentityNumberMissing,
    LoginExpired,
    MixUpError,
    RegionUnavailable,
    StateMismatch,
    UpstreamAccessDenied,
    UpstreamError,
    UpstreamInteractionRequired,
)
from gateway.broker.metadata import MetadataCache, ProviderMetadata
from gateway.registry import ClaimMapping, Names, Region, RegionKind

ISSUER = "https://idp.zj.example.cn/realms/zj"
CALLBACK = "https://tongxing.example.cn/broker/zj/callback"
NOW = 1_760_000_000.0
TODAY = datetime.date(2025, 10, 9)


class FixedMetadataCache(MetadataCache):
    """The cache with its discovery document given, so nothing is fetched."""

    def __init__(self, metadata: ProviderMetadata) -> None:
        super().__init__(clock=lambda: self.now)
        self.now = NOW
        self.fixed = metadata

    def metadata(self, region: Region) -> ProviderMetadata:
        return self.fixed


def metadata(**changes: Any) -> ProviderMetadata:
    document: dict[str, Any] = {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "/protocol/openid-connect/auth",
        "token_endpoint": ISSUER + "/protocol/openid-connect/token",
        "jwks_uri": ISSUER + "/protocol/openid-connect/certs",
        "authorization_response_iss_parameter_supported": True,
        "code_challenge_methods_supported": ["plain", "S256"],
    } | changes
    return ProviderMetadata.from_document("zj", ISSUER, document)


def region(**changes: Any) -> Region:
    values: dict[str, Any] = {
        "code": "zj",
        "names": Names(zh="浙江", en="Zhejiang"),
        "kind": RegionKind.PROVINCE,
        "issuer": ISSUER,
        "client_id": "tongxing-gateway",
        "client_secret": SecretStr("secret-0123456789"),
        "scopes": ["openid", "profile", "phone"],
    } | changes
    return Region(**values)


@pytest.fixture
def cache() -> FixedMetadataCache:
    return FixedMetadataCache(metadata())


@pytest.fixture
def client(cache: FixedMetadataCache) -> RegionClient:
    return RegionClient(region(), cache)


def query(url: str) -> dict[str, str]:
    values = parse_qs(urlsplit(url).query, keep_blank_values=True, strict_parsing=True)
    assert all(len(v) == 1 for v in values.values()), "no parameter is repeated"
    return {k: v[0] for k, v in values.items()}


# -- the authorization request ---------------------------------------------------------------


def test_the_authorization_url_asks_for_a_code_with_pkce_s256(client: RegionClient) -> None:
    url, transaction = client.start_login(CALLBACK)
    assert url.startswith(ISSUER + "/protocol/openid-connect/auth?")
    params = query(url)
    assert params == {
        "response_type": "code",
        "client_id": "tongxing-gateway",
        "redirect_uri": CALLBACK,
        "scope": "openid profile phone",
        "state": transaction.state,
        "nonce": transaction.nonce,
        "code_challenge": params["code_challenge"],
        "code_challenge_method": "S256",
    }
    digest = hashlib.sha256(transaction.code_verifier.encode("ascii")).digest()
    assert params["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert transaction.region == "zj"
    assert transaction.redirect_uri == CALLBACK
    assert transaction.created_at == NOW


def test_state_nonce_and_verifier_are_long_and_fresh_each_time(client: RegionClient) -> None:
    transactions = [client.start_login(CALLBACK).transaction for _ in range(20)]
    for t in transactions:
        assert len(t.state) >= 43  # 256 bits
        assert len(t.nonce) >= 43
        assert 43 <= len(t.code_verifier) <= 128  # RFC 7636 §4.1
        assert t.state != t.nonce
    for field in ("state", "nonce", "code_verifier"):
        assert len({getattr(t, field) for t in transactions}) == 20


def test_optional_parameters_are_passed_through(client: RegionClient) -> None:
    url, transaction = client.start_login(
        CALLBACK,
        prompt="login consent",
        max_age=300,
        login_hint="zhangsan",
        ui_locales="zh-CN en",
        acr_values=["loa2", "loa3"],
    )
    params = query(url)
    assert params["prompt"] == "login consent"
    assert params["max_age"] == "300"
    assert params["login_hint"] == "zhangsan"
    assert params["ui_locales"] == "zh-CN en"
    assert params["acr_values"] == "loa2 loa3"
    assert transaction.max_age == 300


def test_a_query_in_the_authorization_endpoint_is_kept(cache: FixedMetadataCache) -> None:
    cache.fixed = metadata(authorization_endpoint=ISSUER + "/auth?tenant=zj&state=evil")
    params = query(RegionClient(region(), cache).start_login(CALLBACK).url)
    assert params["tenant"] == "zj"
    assert params["state"] != "evil"


@pytest.mark.parametrize(
    "options",
    [
        {"prompt": "none login"},
        {"prompt": "always"},
        {"prompt": ""},
        {"max_age": -1},
        {"max_age": True},
        {"acr_values": ["loa 2"]},
    ],
)
def test_malformed_pass_through_parameters_are_refused(
    options: dict[str, Any], client: RegionClient
) -> None:
    with pytest.raises(ValueError, match=r"prompt|max_age|acr_values"):
        client.start_login(CALLBACK, **options)


def test_malformed_hints_are_dropped(client: RegionClient) -> None:
    params = query(client.start_login(CALLBACK, login_hint="a\nb", ui_locales="zh_CN! !").url)
    assert "login_hint" not in params
    assert "ui_locales" not in params
    params = query(client.start_login(CALLBACK, ui_locales="zh-CN <x> en").url)
    assert params["ui_locales"] == "zh-CN en"


@pytest.mark.parametrize(
    "callback", ["http://tongxing.example.cn/cb", "https://a.example/cb#x", "/relative"]
)
def test_a_bad_redirect_uri_is_refused(callback: str, client: RegionClient) -> None:
    with pytest.raises(ValueError, match="redirect_uri"):
        client.start_login(callback)


def test_a_disabled_region_is_unavailable(cache: FixedMetadataCache) -> None:
    with pytest.raises(RegionUnavailable, match="disabled"):
        RegionClient(region(enabled=False), cache).start_login(CALLBACK)


def test_a_transaction_survives_a_round_trip_and_hides_its_verifier(
    client: RegionClient,
) -> None:
    transaction = client.start_login(CALLBACK, max_age=60).transaction
    assert LoginTransaction.from_dict(transaction.to_dict()) == transaction
    assert transaction.code_verifier not in repr(transaction)
    with pytest.raises(ValueError, match="lacks nonce"):
        LoginTransaction.from_dict({k: v for k, v in transaction.to_dict().items() if k != "nonce"})
    with pytest.raises(ValueError, match="created_at"):
        LoginTransaction.from_dict(transaction.to_dict() | {"created_at": "yesterday"})


# -- the callback, before any code is redeemed -------------------------------------------------


@pytest.fixture
def transaction(client: RegionClient) -> LoginTransaction:
    return client.start_login(CALLBACK).transaction


def finish(client: RegionClient, transaction: LoginTransaction, **params: Any) -> None:
    client.finish_login(params, transaction)


def test_a_forged_state_is_refused(client: RegionClient, transaction: LoginTransaction) -> None:
    with pytest.raises(StateMismatch):
        finish(client, transaction, state="forged", code="c", iss=ISSUER)
    with pytest.raises(StateMismatch):
        finish(client, transaction, code="c", iss=ISSUER)


def test_a_transaction_of_another_region_is_a_mix_up(
    cache: FixedMetadataCache, transaction: LoginTransaction
) -> None:
    js = RegionClient(region(code="js"), cache)
    with pytest.raises(MixUpError, match="received a sign-in to zj"):
        finish(js, transaction, state=transaction.state, code="c", iss=ISSUER)


def test_another_issuer_in_the_response_is_a_mix_up(
    client: RegionClient, transaction: LoginTransaction
) -> None:
    for iss in ("https://idp.js.example.cn/realms/js", ISSUER + "/", ""):
        with pytest.raises(MixUpError, match="is not the region's issuer"):
            finish(client, transaction, state=transaction.state, code="c", iss=iss)


def test_a_missing_iss_is_a_mix_up_when_the_region_always_sends_it(
    client: RegionClient, transaction: LoginTransaction
) -> None:
    with pytest.raises(MixUpError, match="iss is missing"):
        finish(client, transaction, state=transaction.state, code="c")


def test_a_missing_iss_is_tolerated_when_the_region_never_sends_it(
    cache: FixedMetadataCache, transaction: LoginTransaction
) -> None:
    cache.fixed = metadata(authorization_response_iss_parameter_supported=False)
    with pytest.raises(UpstreamAccessDenied):
        finish(
            RegionClient(region(), cache),
            transaction,
            state=transaction.state,
            error="access_denied",
        )


def test_the_iss_check_applies_to_error_responses_too(
    client: RegionClient, transaction: LoginTransaction
) -> None:
    with pytest.raises(MixUpError):
        finish(client, transaction, state=transaction.state, error="access_denied", iss="https://x")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("access_denied", UpstreamAccessDenied),
        ("login_required", UpstreamInteractionRequired),
        ("consent_required", UpstreamInteractionRequired),
        ("server_error", UpstreamError),
        ("<script>", UpstreamError),
    ],
)
def test_upstream_errors_are_typed(
    error: str, kind: type[UpstreamError], client: RegionClient, transaction: LoginTransaction
) -> None:
    with pytest.raises(kind) as caught:
        finish(
            client,
            transaction,
            state=transaction.state,
            iss=ISSUER,
            error=error,
            error_description="bad\x00 thing" + "x" * 1000,
        )
    assert caught.type is kind
    assert caught.value.error in (error, "invalid_error_code")
    assert caught.value.error_description is not None
    assert "\x00" not in caught.value.error_description
    assert len(caught.value.error_description) <= 300


def test_an_old_transaction_has_expired(
    cache: FixedMetadataCache, client: RegionClient, transaction: LoginTransaction
) -> None:
    cache.now += 601
    with pytest.raises(LoginExpired):
        finish(client, transaction, state=transaction.state, code="c", iss=ISSUER)


@pytest.mark.parametrize(
    "params",
    [
        {"code": ["c1", "c2"]},
        {"state": ["one", "two"]},
        {"iss": [ISSUER, ISSUER]},
        {},
        {"code": ""},
        {"code": "with space"},
    ],
)
def test_malformed_callbacks_are_refused(
    params: dict[str, Any], client: RegionClient, transaction: LoginTransaction
) -> None:
    values = {"state": [transaction.state], "iss": [ISSUER]} | params
    with pytest.raises((CallbackInvalid, StateMismatch)):
        client.finish_login(values, transaction)


# -- the normalised identity -------------------------------------------------------------------


def claims(**changes: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER,
        "sub": "f:zj:1",
        "id_number": "11010519491231002x",
        "name": "张三",
        "phone_number": "+86 138 0013 8000",
        "acr": "1",
        "amr": ["pwd"],
        "auth_time": int(NOW),
    }
    return base | changes


def test_claims_become_an_upstream_identity() -> None:
    identity = identity_from_claims(region(), claims(), today=TODAY)
    assert isinstance(identity, UpstreamIdentity)
    assert identity.identity_number.value == "11010519491231002X"
    assert (identity.region, identity.issuer, identity.subject) == ("zj", ISSUER, "f:zj:1")
    assert (identity.name, identity.phone_number) == ("张三", "+86 138 0013 8000")
    assert (identity.acr, identity.amr, identity.auth_time) == ("1", ("pwd",), int(NOW))
    assert "id_number" not in identity.claims
    assert "11010519491231002" not in repr(identity)


def test_the_regions_claim_mapping_is_used() -> None:
    mapped = region(claims=ClaimMapping(identity_number="sfzh", name="xm", phone_number="sjh"))
    identity = identity_from_claims(
        mapped, claims(sfzh="11010519491231002X", xm="李四", sjh="13800138000"), today=TODAY
    )
    assert (identity.name, identity.phone_number) == ("李四", "13800138000")
    assert "sfzh" not in identity.claims


@pytest.mark.parametrize("value", [None, ""])
def test_a_missing_identity_number_is_refused(value: Any) -> None:
    with pytest.raises(IdentityNumberMissing, match="'id_number'"):
        identity_from_claims(region(), claims(id_number=value), today=TODAY)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("110105194912310021", "check character"),
        ("11010519491331002X", "birth date"),
        ("1101051949123100", "18 characters"),
        (110105194912310020, "not a string"),
    ],
)
def test_a_malformed_identity_number_is_refused(value: Any, reason: str) -> None:
    with pytest.raises(IdentityNumberInvalid, match=reason) as caught:
        identity_from_claims(region(), claims(id_number=value), today=TODAY)
    assert "1101051949" not in str(caught.value)


def test_every_error_speaks_chinese_and_english() -> None:
    error: BrokerError = MixUpError("zj", "iss differs")
    assert error.code == "issuer_mismatch"
    assert "错误" in error.message()
    assert "wrong" in error.message("en-GB")
    assert RegionUnavailable("zj", "down").status == 503
