"""The gateway as a confidential OpenID Connect client of one region (the relying-party face).

A sign-in at a region has two halves, with the caller (the sign-in, :mod:`gateway.signin`)
keeping the transaction in between, in its pending authorization, bound to the browser and
answered once:

1. :meth:`RegionClient.start_login` makes an Authentication Request (OIDC Core §3.1.2.1) with a
   fresh ``state`` (RFC 6749 §10.12), ``nonce`` (OIDC Core §15.5.2) and PKCE S256 challenge
   (RFC 7636 §4), sent to the region's own callback URL, and returns the URL and a
   :class:`LoginTransaction`.
2. :meth:`RegionClient.finish_login` checks the callback against the transaction (region,
   ``state``, age), the RFC 9207 ``iss`` parameter (mix-up defence, RFC 9700 §4.4), any error the
   region returned, redeems the code at the token endpoint with ``client_secret_basic`` and the
   code verifier (OIDC Core §3.1.3.1), validates the ID token (OIDC Core §3.1.3.7, in
   :mod:`gateway.broker.id_token`) and returns an :class:`UpstreamIdentity`: the same shape
   whatever the upstream, as Dex's connectors do.
"""

from __future__ import annotations

import base64
import datetime
import hmac
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from gateway.broker.errors import (
    CallbackInvalid,
    IdentityNumberInvalid,
    IdentityNumberMissing,
    InvalidUpstreamToken,
    LoginExpired,
    MixUpError,
    RegionUnavailable,
    StateMismatch,
    TokenExchangeFailed,
    UpstreamAccessDenied,
    UpstreamError,
    UpstreamInteractionRequired,
)
from gateway.broker.id_token import IdTokenExpectations, validate_id_token
from gateway.broker.metadata import MetadataCache, ProviderMetadata, SigningKey
from gateway.broker.pkce import CHALLENGE_METHOD, code_challenge, new_code_verifier
from gateway.broker.transport import request_json
from gateway.identity import IdentityNumberError, ResidentIdentityNumber, parse_identity_number
from gateway.registry import Region, check_absolute_url

__all__ = [
    "CallbackParams",
    "LoginStart",
    "LoginTransaction",
    "RegionClient",
    "UpstreamIdentity",
    "identity_from_claims",
]

log = logging.getLogger(__name__)

CallbackParams = Mapping[str, str | Sequence[str]]
"""Callback query parameters: ``request.args.to_dict(flat=False)`` or a plain ``dict``."""

PROMPT_VALUES = frozenset({"none", "login", "consent", "select_account"})
INTERACTION_ERRORS = frozenset(
    {"login_required", "interaction_required", "consent_required", "account_selection_required"}
)
_LOCALE = re.compile(r"[A-Za-z0-9-]{1,35}")
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")  # RFC 6749 §4.1.2.1
_CODE = re.compile(r"[\x21-\x7e]{1,2048}")
CHINA_STANDARD_TIME = datetime.timezone(datetime.timedelta(hours=8))


@dataclass(frozen=True)
class LoginTransaction:
    """What the gateway must remember between sending a person to a region and their return.

    The sign-in keeps it server-side (:class:`~gateway.store.contract.UpstreamLeg`, ``state``
    by its hash only), bound to the browser, and takes it once when the region answers: a
    replayed callback then finds no transaction. It rebuilds this object for
    :meth:`RegionClient.finish_login` with the ``state`` the callback carried, whose hash found
    the leg. :meth:`to_dict` and :meth:`from_dict` serve callers that keep it whole.
    """

    region: str
    state: str
    nonce: str
    code_verifier: str = field(repr=False)
    redirect_uri: str
    created_at: float
    max_age: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "state": self.state,
            "nonce": self.nonce,
            "code_verifier": self.code_verifier,
            "redirect_uri": self.redirect_uri,
            "created_at": self.created_at,
            "max_age": self.max_age,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoginTransaction:
        """The inverse of :meth:`to_dict`; raises ``ValueError`` on a malformed record."""
        try:
            strings = {
                name: data[name]
                for name in ("region", "state", "nonce", "code_verifier", "redirect_uri")
            }
            created_at, max_age = data["created_at"], data.get("max_age")
        except KeyError as exc:
            raise ValueError(f"login transaction lacks {exc.args[0]}") from None
        if not all(isinstance(v, str) and v for v in strings.values()):
            raise ValueError("login transaction has a field that is not a non-empty string")
        if isinstance(created_at, bool) or not isinstance(created_at, int | float):
            raise ValueError("login transaction created_at is not a number")
        if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, int)):
            raise ValueError("login transaction max_age is not an integer")
        return cls(**strings, created_at=float(created_at), max_age=max_age)


class LoginStart(NamedTuple):
    """Where to send the browser, and what to remember until it comes back."""

    url: str
    transaction: LoginTransaction


@dataclass(frozen=True)
class UpstreamIdentity:
    """A person as a region asserted them: the same shape whatever the upstream.

    ``claims`` are the ID token's claims without the identity-number claim: the number itself
    lives only in ``identity_number``, whose ``repr`` hides it, so that logging or storing the
    claims never writes it in clear (DESIGN.md, "National identity").
    """

    region: str
    issuer: str
    subject: str
    identity_number: ResidentIdentityNumber
    name: str | None
    phone_number: str | None
    acr: str | None
    amr: tuple[str, ...]
    auth_time: int | None
    claims: Mapping[str, Any] = field(repr=False)
    sid: str | None = None
    """The region's session id (its ID token's ``sid``, Back-Channel Logout 1.0 §2.1): a
    logout token from the region names the session by it (§2.4)."""
    id_token: str | None = field(default=None, repr=False)
    """The region's ID token as it came (a compact JWS), kept only to be sent back to the region
    as ``id_token_hint`` at logout (RP-Initiated Logout 1.0 §2). A bearer of the person's
    sign-in: never logged (no ``repr``) and stored only sealed (:mod:`gateway.sessions`)."""


class RegionClient:
    """One region's OpenID Provider, seen from the gateway. Cheap: make one per request.

    ``metadata`` is the gateway-wide :class:`MetadataCache`; its session (connection pool),
    limits and clock are used for the token endpoint too. ``leeway`` is the clock skew allowed
    on ``exp``/``iat``/``nbf``/``auth_time``: three minutes, so a region whose clock is two
    minutes off either way still signs people in (issue 14's faults; OIDC Core §3.1.3.7 leaves
    the skew to the RP); ``transaction_ttl`` how long a person may take
    at the region; ``max_token_age`` how old (``iat``) a freshly issued ID token may be.
    """

    def __init__(
        self,
        region: Region,
        metadata: MetadataCache,
        *,
        leeway: float = 180,
        transaction_ttl: float = 600,
        max_token_age: float = 600,
    ) -> None:
        self.region = region
        self.cache = metadata
        self.leeway = leeway
        self.transaction_ttl = transaction_ttl
        self.max_token_age = max_token_age

    # -- the first half ----------------------------------------------------------------------

    def start_login(
        self,
        redirect_uri: str,
        *,
        prompt: str | None = None,
        max_age: int | None = None,
        login_hint: str | None = None,
        ui_locales: str | None = None,
        acr_values: str | Sequence[str] | None = None,
    ) -> LoginStart:
        """Build the Authentication Request (OIDC Core §3.1.2.1) for this region.

        ``redirect_uri`` is the gateway's callback for this region (one per region: RFC 9700
        §4.4.2.2). The optional parameters are passed through from the portal's request after
        a shape check: a malformed ``prompt``, ``max_age`` or ``acr_values`` raises
        ``ValueError`` (the provider face validates them first); a malformed ``login_hint`` or
        ``ui_locales`` is dropped.
        Raises :class:`RegionUnavailable` when the region is disabled or its metadata cannot
        be had, at once when its circuit is open (:mod:`gateway.region_health`).
        """
        check_absolute_url(redirect_uri, what="redirect_uri")
        extra = _pass_through(prompt, max_age, login_hint, ui_locales, acr_values)
        if not self.region.enabled:
            raise RegionUnavailable(self.region.code, "the region is disabled")
        self.cache.health.check(self.region.code)  # a region that keeps failing: no wait
        metadata = self.cache.metadata(self.region)
        methods = metadata.code_challenge_methods_supported
        if methods and CHALLENGE_METHOD not in methods:
            log.warning(
                "region %s does not advertise PKCE S256; sending it anyway", self.region.code
            )
        transaction = LoginTransaction(
            region=self.region.code,
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=new_code_verifier(),
            redirect_uri=redirect_uri,
            created_at=self.cache.clock(),
            max_age=max_age,
        )
        params = {
            "response_type": "code",
            "client_id": self.region.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.region.scopes),
            "state": transaction.state,
            "nonce": transaction.nonce,
            "code_challenge": code_challenge(transaction.code_verifier),
            "code_challenge_method": CHALLENGE_METHOD,
            **extra,
        }
        return LoginStart(_with_query(metadata.authorization_endpoint, params), transaction)

    # -- the second half ---------------------------------------------------------------------

    def finish_login(
        self,
        params: CallbackParams,
        transaction: LoginTransaction,
        *,
        userinfo_claims: Sequence[str] = (),
    ) -> UpstreamIdentity:
        """Check the authorization response, redeem the code, validate the ID token.

        ``params`` are the query parameters of the request to this region's callback;
        ``transaction`` is the one the caller stored for this browser. Raises a
        :class:`~gateway.broker.errors.BrokerError` subclass for every failure.

        ``userinfo_claims``: claims the caller needs that the upstream may put in its UserInfo
        response rather than its ID token (IDA §5 allows ``verified_claims`` in either): when
        the ID token holds none of them and the upstream publishes a ``userinfo_endpoint``, they
        are fetched there with the access token just redeemed (:meth:`_userinfo`) and added to
        the claims, and only they.
        """
        where = self.region.code
        if transaction.region != where:
            # The response reached another region's callback than the one the request named.
            raise MixUpError(
                where, f"the callback of {where} received a sign-in to {transaction.region}"
            )
        state = _single(params, "state", where)
        if state is None or not hmac.compare_digest(state.encode(), transaction.state.encode()):
            raise StateMismatch(where, "state is missing or does not match the transaction")
        if self.cache.clock() - transaction.created_at > self.transaction_ttl:
            raise LoginExpired(where, "the login transaction is older than its time to live")

        metadata = self.cache.metadata(self.region)
        self._check_issuer(_single(params, "iss", where), metadata)

        error = _single(params, "error", where)
        if error is not None:
            raise _upstream_error(where, error, _single(params, "error_description", where))
        code = _single(params, "code", where)
        if code is None or _CODE.fullmatch(code) is None:
            raise CallbackInvalid(where, "the callback has no usable code")

        id_token, access_token = self._redeem(code, transaction, metadata)
        claims = validate_id_token(
            id_token,
            region=where,
            expected=IdTokenExpectations(
                issuer=self.region.issuer,
                client_id=self.region.client_id,
                nonce=transaction.nonce,
                now=self.cache.clock(),
                leeway=self.leeway,
                max_token_age=self.max_token_age,
                max_age=transaction.max_age,
                access_token=access_token,
            ),
            resolve_key=self._resolve_key,
        )
        if (
            userinfo_claims
            and not any(name in claims for name in userinfo_claims)
            and metadata.userinfo_endpoint is not None
            and access_token is not None
        ):
            found = self._userinfo(metadata.userinfo_endpoint, access_token, claims.get("sub"))
            claims = {**claims} | {k: found[k] for k in userinfo_claims if k in found}
        today = datetime.datetime.fromtimestamp(self.cache.clock(), CHINA_STANDARD_TIME).date()
        identity = identity_from_claims(self.region, claims, today=today)
        return replace(identity, id_token=id_token)

    def _check_issuer(self, iss: str | None, metadata: ProviderMetadata) -> None:
        """RFC 9207 §2.4: ``iss``, when present, must be this region's issuer, exactly; when the
        region advertises ``authorization_response_iss_parameter_supported`` it must be present.
        """
        if iss is None:
            if metadata.authorization_response_iss_parameter_supported:
                raise MixUpError(self.region.code, "iss is missing but the region always sends it")
            return
        if iss != self.region.issuer:
            raise MixUpError(self.region.code, f"iss {iss[:200]!r} is not the region's issuer")

    def _userinfo(self, endpoint: str, access_token: str, subject: Any) -> dict[str, Any]:
        """The UserInfo response (OIDC Core §5.3.1-2) for the access token just redeemed, sent
        as a bearer token in the header (RFC 6750 §2.1), through the same bounded transport and
        circuit as the token request. Its ``sub`` must be the ID token's (§5.3.4: otherwise
        the response must not be used); a non-200 answer, or one that is not a JSON object, is
        :class:`~gateway.broker.errors.InvalidUpstreamToken` (a signed or encrypted UserInfo
        response is not read: the gateway does not register for one)."""
        region = self.region
        with self.cache.health.call(region.code, probe=True):
            response = request_json(
                self.cache.session,
                "GET",
                endpoint,
                region=region.code,
                what="userinfo endpoint",
                limits=self.cache.limits,
                headers={"Authorization": f"Bearer {access_token}"},
            )
        if response.status != 200:
            raise InvalidUpstreamToken(region.code, f"userinfo endpoint: HTTP {response.status}")
        body = response.body
        sub = body.get("sub")
        if not isinstance(sub, str) or not isinstance(subject, str) or sub != subject:
            raise InvalidUpstreamToken(region.code, "the userinfo sub is not the ID token's")
        return body

    def _resolve_key(self, kid: str | None, alg: str) -> SigningKey:
        return self.cache.find_key(self.region, kid, alg)

    def _redeem(
        self, code: str, transaction: LoginTransaction, metadata: ProviderMetadata
    ) -> tuple[str, str | None]:
        """Token Request (OIDC Core §3.1.3.1, RFC 6749 §4.1.3, RFC 7636 §4.5).

        The client authenticates with ``client_secret_basic`` (RFC 6749 §2.3.1: id and secret
        form-urlencoded before base64), or ``client_secret_post`` when that is all the region
        offers. Returns the ID token and the access token.
        """
        region = self.region
        secret = region.client_secret.get_secret_value()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": transaction.redirect_uri,
            "code_verifier": transaction.code_verifier,
        }
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        methods = metadata.token_endpoint_auth_methods_supported
        if "client_secret_basic" not in methods and "client_secret_post" in methods:
            form |= {"client_id": region.client_id, "client_secret": secret}
        else:
            pair = f"{quote(region.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        # The person is back with a code, so the call is made even on an open circuit (probe):
        # only its outcome counts towards the region's health.
        with self.cache.health.call(region.code, probe=True):
            response = request_json(
                self.cache.session,
                "POST",
                metadata.token_endpoint,
                region=region.code,
                what="token endpoint",
                limits=self.cache.limits,
                data=form,
                headers=headers,
            )
        body = response.body
        if response.status != 200:
            error = body.get("error")
            if not isinstance(error, str):
                raise RegionUnavailable(region.code, f"token endpoint: HTTP {response.status}")
            description = body.get("error_description")
            raise TokenExchangeFailed(
                region.code,
                _clean_error(error),
                _clean_text(description) if isinstance(description, str) else None,
            )
        token_type = body.get("token_type")
        if token_type is not None and (
            not isinstance(token_type, str) or token_type.lower() != "bearer"
        ):
            raise InvalidUpstreamToken(region.code, f"token_type {token_type!r} is not Bearer")
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise InvalidUpstreamToken(region.code, "the token response has no id_token")
        access_token = body.get("access_token")
        return id_token, access_token if isinstance(access_token, str) else None


def identity_from_claims(
    region: Region, claims: Mapping[str, Any], *, today: datetime.date
) -> UpstreamIdentity:
    """Normalise validated ID-token claims with the region's claim mapping.

    The identity number must be present (:class:`IdentityNumberMissing`) and a valid GB
    11643-1999 number (:class:`IdentityNumberInvalid`); ``today`` bounds its birth date. Other
    attributes are optional: a claim of the wrong type counts as absent.
    """
    mapping = region.claims
    raw_number = claims.get(mapping.identity_number)
    if raw_number is None or raw_number == "":
        raise IdentityNumberMissing(
            region.code, f"the ID token has no {mapping.identity_number!r} claim"
        )
    if not isinstance(raw_number, str):
        raise IdentityNumberInvalid(region.code, "the identity number claim is not a string")
    try:
        number = parse_identity_number(raw_number, today=today)
    except IdentityNumberError as exc:
        raise IdentityNumberInvalid(region.code, exc.reason) from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidUpstreamToken(region.code, "sub is missing")
    auth_time = claims.get("auth_time")
    amr = claims.get("amr")
    return UpstreamIdentity(
        region=region.code,
        issuer=region.issuer,
        subject=subject,
        identity_number=number,
        name=_optional_string(claims, mapping.name),
        phone_number=_optional_string(claims, mapping.phone_number),
        acr=_optional_string(claims, "acr"),
        amr=tuple(a for a in amr if isinstance(a, str)) if isinstance(amr, list) else (),
        auth_time=int(auth_time)
        if isinstance(auth_time, int | float) and not isinstance(auth_time, bool)
        else None,
        claims={k: v for k, v in claims.items() if k != mapping.identity_number},
        sid=sid if (sid := _optional_string(claims, "sid")) and len(sid) <= 255 else None,
    )


def _pass_through(
    prompt: str | None,
    max_age: int | None,
    login_hint: str | None,
    ui_locales: str | None,
    acr_values: str | Sequence[str] | None,
) -> dict[str, str]:
    """Shape checks of the optional Authentication Request parameters (OIDC Core §3.1.2.1)."""
    extra: dict[str, str] = {}
    if prompt is not None:
        values = prompt.split()
        if not values or not set(values) <= PROMPT_VALUES or len(set(values)) != len(values):
            raise ValueError(f"prompt {prompt!r} is not a list of {sorted(PROMPT_VALUES)}")
        if "none" in values and len(values) > 1:
            raise ValueError("prompt=none cannot be combined with other values")
        extra["prompt"] = " ".join(values)
    if max_age is not None:
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
            raise ValueError("max_age must be a non-negative integer")
        extra["max_age"] = str(max_age)
    # login_hint and ui_locales are hints (OIDC Core §3.1.2.1): a malformed one is dropped,
    # never an error, so a portal's junk cannot break the sign-in.
    if login_hint is not None and 0 < len(login_hint) <= 255 and login_hint.isprintable():
        extra["login_hint"] = login_hint
    if ui_locales is not None:
        locales = [t for t in ui_locales.split() if _LOCALE.fullmatch(t)][:10]
        if locales:
            extra["ui_locales"] = " ".join(locales)
    if acr_values is not None:
        values = acr_values.split() if isinstance(acr_values, str) else list(acr_values)
        if not 0 < len(values) <= 10 or not all(
            isinstance(v, str) and v.isprintable() and v and " " not in v and len(v) <= 255
            for v in values
        ):
            raise ValueError("acr_values must be 1-10 printable values without spaces")
        extra["acr_values"] = " ".join(values)
    return extra


def _with_query(endpoint: str, params: Mapping[str, str]) -> str:
    """Add ``params`` to ``endpoint``, keeping any query it has (RFC 6749 §3.1)."""
    parts = urlsplit(endpoint)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _single(params: CallbackParams, name: str, region: str) -> str | None:
    """One parameter's value; a repeated parameter is refused (RFC 6749 §3.1)."""
    value = params.get(name)
    if value is None or isinstance(value, str):
        return value
    values = list(value)
    if not values:
        return None
    if len(values) > 1 or not isinstance(values[0], str):
        raise CallbackInvalid(region, f"the callback repeats the {name!r} parameter")
    return values[0]


def _upstream_error(region: str, error: str, description: str | None) -> UpstreamError:
    """Map an authorization error response (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6)."""
    code = _clean_error(error)
    text = _clean_text(description) if description is not None else None
    if code == "access_denied":
        return UpstreamAccessDenied(region, code, text)
    if code in INTERACTION_ERRORS:
        return UpstreamInteractionRequired(region, code, text)
    return UpstreamError(region, code, text)


def _clean_error(error: str) -> str:
    return error if _ERROR_CODE.fullmatch(error) else "invalid_error_code"


def _clean_text(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable())[:300]


def _optional_string(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None
