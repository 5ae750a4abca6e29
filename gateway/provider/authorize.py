"""The authorization endpoint (OIDC Core §3.1.2) and the region callback that resumes it.

A portal's request is validated first (client, exact redirect URI, PKCE, scope, prompt). With a
usable SSO session the code is issued at once; otherwise the person goes to their region (named
by the portal with ``region=`` or chosen on the chooser page), and the region's answer comes back
to ``/callback/<region>``, which links the national identity, opens the SSO session and resumes
the original request.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidClientError, InvalidRequestError
from authlib.oidc.core.errors import ConsentRequiredError, InteractionRequiredError
from flask import (
    Blueprint,
    Request,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from gateway.assurance import Assurance, Verdict, region_level
from gateway.broker import LoginTransaction, RegionClient
from gateway.broker.errors import UpstreamAccessDenied
from gateway.errors import (
    CallbackNotRecognised,
    ConsentRequestExpired,
    IdentityConflict,
    SignInFromAnotherBrowser,
    SignInLinkExpired,
    TongxingError,
    UnknownClient,
    UnregisteredRedirectUri,
    UnsupportedResponseType,
    UnverifiedClient,
)
from gateway.identity import identity_key
from gateway.keys import TokenRejectedError
from gateway.provider import csrf
from gateway.provider.server import GatewayAuthorizationServer, Provider, User
from gateway.registry import Portal, RegionKind
from gateway.services import Services, current_services
from gateway.sessions import SEALED_ID_NUMBER, SESSION_COOKIE
from gateway.store.contract import (
    LoginTransaction as StoredTransaction,
)
from gateway.store.contract import (
    LoginTransactionNotFoundError,
    SsoSession,
    SubjectLinkConflictError,
    token_hash,
)

log = logging.getLogger(__name__)
blueprint = Blueprint("authorize", __name__)

BINDING_COOKIE = "tongxing_login"
REGION_COOKIE = "tongxing_region"
TRANSACTION_LIFETIME = timedelta(minutes=10)
STEP_UP_CONTINUE = "stepup_continue"  # the authorization request a step-up resumes
CONSENT_PENDING = "consent_pending"
CONSENT_FORM = "consent"  # the CSRF purpose of the consent page
CLAIM_LABELS = {
    "name": ("姓名", "Name"),
    "phone_number": ("手机号码", "Phone number"),
    "id_number": ("公民身份号码", "Resident identity number"),
    "home_region": ("注册地区", "Home region"),
}
# Parameters of the original request that are carried through the region round trip.
CARRIED = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
    "acr_values",
    "ui_locales",
    "id_token_hint",
    "region",
)


def oauth() -> tuple[GatewayAuthorizationServer, Provider]:
    server, provider = current_app.extensions["tongxing.oauth"]
    return server, provider


def _now() -> datetime:
    return datetime.now(UTC)


def _secure() -> bool:
    return not current_services().settings.insecure_allow_http


def _params() -> dict[str, str]:
    return {k: v for k in CARRIED if (v := request.values.get(k)) is not None}


def _max_age(params: dict[str, str]) -> int | None:
    """``max_age`` as an integer; ``ValueError`` when it is not a non-negative integer."""
    value = params.get("max_age")
    if value is None:
        return None
    if not value.isdigit() or len(value) > 10:
        raise ValueError("max_age must be a non-negative integer")
    return int(value)


def _session_user(
    services: Services, params: dict[str, str], sso: SsoSession | None
) -> User | None:
    """The SSO user, if the session satisfies the request (OIDC Core §3.1.2.1-3.1.2.3).

    ``prompt=login`` and an exceeded ``max_age`` ask for a fresh sign-in; an ``id_token_hint``
    naming someone else than the session's person means this session does not answer.
    """
    if sso is None or "login" in params.get("prompt", "").split():
        return None
    try:
        max_age = _max_age(params)
    except ValueError:
        return None  # refused with invalid_request once the client is known
    if max_age is not None and (_now() - sso.auth_time).total_seconds() > max_age:
        return None
    hint = params.get("id_token_hint")
    if hint:
        portal = services.registry.portal(params.get("client_id", ""))
        try:
            hinted = services.keys.verify(hint).get("sub")
        except TokenRejectedError:
            return None
        pairwise = services.settings.pairwise_secret.get_secret_value().encode()
        if portal is None or hinted != portal.subject_for(sso.subject, pairwise):
            return None
    return User.from_session(sso, dict(sso.claims))


def _error_redirect(error: OAuth2Error, params: dict[str, str]) -> Response:
    """An error for the portal, with ``state`` and ``iss`` (RFC 6749 §4.1.2.1, RFC 9207)."""
    query = {"error": error.error, "iss": current_services().settings.issuer_url}
    if error.description:
        query["error_description"] = error.description
    if "state" in params:
        query["state"] = params["state"]
    separator = "&" if "?" in error.redirect_uri else "?"
    return redirect(f"{error.redirect_uri}{separator}{urlencode(query)}", code=303)


_UNVERIFIED: dict[str, type[UnverifiedClient]] = {
    cls.code: cls for cls in (UnknownClient, UnregisteredRedirectUri, UnsupportedResponseType)
}


def _unverified(error: OAuth2Error) -> UnverifiedClient:
    """No redirect to an unverified URI (RFC 6749 §4.1.2.1): a page for the person instead.

    Authlib refuses a request it cannot redirect with one of the codes in ``_UNVERIFIED``;
    anything else is reported as the redirect URI it could not verify.
    """
    page = _UNVERIFIED.get(error.error, UnregisteredRedirectUri)
    return page(f"{error.error}: {error.description or 'no description'}"[:300])


@blueprint.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response | str | tuple[str, int]:
    services = current_services()
    params = _params()
    sso = services.sessions.find(request.cookies.get(SESSION_COOKIE), _now())
    return _answer(services, params, _session_user(services, params, sso), request)


def _answer(
    services: Services, params: dict[str, str], user: User | None, http: Request
) -> Response | str | tuple[str, int]:
    """Answer the authorization request ``http`` (with ``params``, its carried parameters): a
    code for the portal when ``user`` may enter, else a step-up, consent, error or the region."""
    server, _ = oauth()
    try:
        grant = server.get_consent_grant(request=http, end_user=user)
    except InvalidClientError as error:
        raise _unverified(error) from None
    except OAuth2Error as error:
        if error.redirect_uri is None:
            raise _unverified(error) from None
        return _error_redirect(error, params)
    redirect_uri = params["redirect_uri"]
    try:
        _max_age(params)
    except ValueError as error:
        return _error_redirect(InvalidRequestError(str(error), redirect_uri=redirect_uri), params)
    if user is not None:
        portal = grant.request.client.portal
        refused = _assurance(services, portal, user, params)
        if refused is not None:
            return refused
        asked = _consent(portal, user, params, grant.request.payload.scope or "")
        if asked is not None:
            return asked
        response: Response = server.create_authorization_response(
            request=http, grant=grant, grant_user=user
        )
        response.status_code = 303 if http.method == "POST" else response.status_code
        return response
    return _go_to_region(services, params, redirect_uri)


def _resumed_request(params: dict[str, str]) -> Request:
    """The portal's authorization request as it reached ``/authorize``, rebuilt from the
    parameters carried through the region round trip (a GET, like the redirect it replaces)."""
    builder = EnvironBuilder(
        path="/authorize", base_url=request.host_url, query_string=urlencode(params)
    )
    try:
        return Request(builder.get_environ())
    finally:
        builder.close()


class UnmetAuthenticationRequirementsError(OAuth2Error):  # type: ignore[misc]
    """The required level cannot be reached (OpenID Connect EAP ACR Values §2.1)."""

    error = "unmet_authentication_requirements"


def _assurance(
    services: Services, portal: Portal, user: User, params: dict[str, str]
) -> Response | None:
    """Apply the policies: enter, step up with TOTP, or tell the portal why not.

    A refusal carries no personal data: only the error code, ``state`` and ``iss``.
    """
    outcome = Assurance(services.policy).evaluate(user.sign_in(), portal, params.get("acr_values"))
    redirect_uri = params["redirect_uri"]
    if outcome.verdict is Verdict.ENTER:
        return None
    if outcome.verdict is Verdict.DENIED:
        error: OAuth2Error = AccessDeniedError("the policies do not admit this person")
    elif outcome.verdict is Verdict.UNMET:
        error = UnmetAuthenticationRequirementsError(
            f"{outcome.required_level} needs a sign-in at a region that can vouch for it"
        )
    elif "none" in params.get("prompt", "").split():
        error = InteractionRequiredError("a second factor is required")
    else:
        session[STEP_UP_CONTINUE] = f"/authorize?{urlencode(params)}"
        return redirect(url_for("stepup.second_factor"), code=303)
    error.redirect_uri = redirect_uri
    return _error_redirect(error, params)


def _consent(
    portal: Portal, user: User, params: dict[str, str], scope: str
) -> Response | str | None:
    """Ask the person before releasing claims the registration reserves for consent."""
    _, provider = oauth()
    missing = provider.missing_consent(portal, user, provider.releasable(portal, user, scope))
    if not missing:
        return None
    if "none" in params.get("prompt", "").split():
        error = ConsentRequiredError("the person has not consented to the requested claims")
        error.redirect_uri = params["redirect_uri"]
        return _error_redirect(error, params)
    session[CONSENT_PENDING] = {"params": params, "claims": sorted(missing)}
    return render_template(
        "consent.html",
        portal=portal,
        claims=sorted(missing),
        labels=CLAIM_LABELS,
        csrf=csrf.token(CONSENT_FORM),
    )


@blueprint.post("/consent")
def consent() -> Response:
    """The answer of the consent page: remembered when given, ``access_denied`` when refused."""
    services = current_services()
    pending = session.pop(CONSENT_PENDING, None)
    sso = services.sessions.find(request.cookies.get(SESSION_COOKIE), _now())
    if not isinstance(pending, dict) or sso is None or not csrf.matches(CONSENT_FORM):
        raise ConsentRequestExpired("no pending consent, SSO session or matching CSRF token")
    params: dict[str, str] = pending["params"]
    if request.form.get("decision") != "allow":
        denied = AccessDeniedError("the person did not consent")
        denied.redirect_uri = params["redirect_uri"]
        return _error_redirect(denied, params)
    services.store.save_consent(
        sso.subject, params["client_id"], frozenset(pending["claims"]), _now()
    )
    return redirect(f"/authorize?{urlencode(params)}", code=303)


def _go_to_region(services: Services, params: dict[str, str], redirect_uri: str) -> Response | str:
    code = params.get("region")
    region = services.registry.region(code) if code else None
    if region is None or not region.enabled:
        # Provinces and their peers first, national departments last; by code within a kind.
        regions = sorted(
            (r for r in services.registry.regions() if r.enabled),
            key=lambda r: (r.kind is RegionKind.DEPARTMENT, r.code),
        )
        hidden = [(k, v) for k, v in params.items() if k != "region"]
        return render_template(
            "chooser.html", params=hidden, regions=regions, last=request.cookies.get(REGION_COOKIE)
        )
    issuer = services.settings.issuer_url
    try:
        start = RegionClient(region, services.regions).start_login(
            f"{issuer}/callback/{region.code}",
            max_age=_max_age(params),
            login_hint=params.get("login_hint"),
            ui_locales=params.get("ui_locales"),
        )
    except ValueError as error:
        return _error_redirect(InvalidRequestError(str(error), redirect_uri=redirect_uri), params)
    binding = services.sessions.new_id()
    # The sign-in that follows satisfies prompt=login and max_age: the resumed request drops them
    # (auth_time in the ID token still says when it happened).
    resumed = {
        k: v
        for k, v in params.items()
        if k != "max_age" and not (k == "prompt" and "login" in v.split())
    }
    services.store.save_login_transaction(
        StoredTransaction(
            state_hash=token_hash(start.transaction.state),
            region=region.code,
            nonce=start.transaction.nonce,
            code_verifier=start.transaction.code_verifier,
            request={
                "params": resumed,
                "broker": start.transaction.to_dict(),
                "binding": token_hash(binding),
            },
            expires_at=_now() + TRANSACTION_LIFETIME,
        )
    )
    response = redirect(start.url, code=303)
    # Binds the round trip to this browser: a callback URL planted by someone else fails.
    response.set_cookie(
        BINDING_COOKIE,
        binding,
        max_age=int(TRANSACTION_LIFETIME.total_seconds()),
        path="/callback/",
        secure=_secure(),
        httponly=True,
        samesite="Lax",
    )
    response.set_cookie(
        REGION_COOKIE,
        region.code,
        max_age=365 * 86400,
        secure=_secure(),
        httponly=True,
        samesite="Lax",
    )
    return response


@blueprint.get("/callback/<code>")
def callback(code: str) -> Response:
    """The region's authorization response (OIDC Core §3.1.2.5), one URI per region."""
    services = current_services()
    region = services.registry.region(code)
    state = request.args.get("state")
    if region is None or not state:
        raise CallbackNotRecognised(
            f"callback for region {code[:40]!r}, state given: {bool(state)}"
        )
    now = _now()
    try:
        stored = services.store.consume_login_transaction(token_hash(state), now)
    except LoginTransactionNotFoundError:
        raise SignInLinkExpired(f"region {region.code}: no live login transaction") from None
    binding = request.cookies.get(BINDING_COOKIE, "")
    if not binding or token_hash(binding) != stored.request.get("binding"):
        raise SignInFromAnotherBrowser(f"region {region.code}: binding cookie missing or foreign")
    try:
        transaction = LoginTransaction.from_dict(stored.request["broker"])
        identity = RegionClient(region, services.regions).finish_login(
            request.args.to_dict(flat=False), transaction
        )
    except UpstreamAccessDenied:
        # The person said no at their region: the portal hears it (RFC 6749 §4.1.2.1).
        params = dict(stored.request["params"])
        denied = AccessDeniedError("sign-in was cancelled at the region")
        denied.redirect_uri = params["redirect_uri"]
        return _error_redirect(denied, params)
    national_secret = services.settings.national_secret.get_secret_value().encode()
    try:
        subject = services.store.link_subject(
            identity_key(identity.identity_number, national_secret),
            region.code,
            identity.subject,
            now,
        )
    except SubjectLinkConflictError:
        raise IdentityConflict(
            f"region {region.code}: the regional account is linked elsewhere"
        ) from None
    acr = region_level(region, identity.acr, services.settings.ceiling_for(region.code))
    session_id = services.sessions.new_id()
    claims: dict[str, Any] = {
        "home_region": region.code,
        SEALED_ID_NUMBER: services.sealer.seal_identity_number(
            identity.identity_number, subject.id
        ),
    }
    if identity.name:
        claims["name"] = identity.name
    if identity.phone_number:
        claims["phone_number"] = identity.phone_number
    sso = SsoSession(
        session_hash=token_hash(session_id),
        subject=subject.id,
        region=region.code,
        auth_time=now,
        acr=acr,
        amr=identity.amr or ("pwd",),
        created_at=now,
        expires_at=now + services.settings.sso_session_lifetime,
        claims=claims,
    )
    services.sessions.start(sso)
    resumed = dict(stored.request["params"])
    resumed["region"] = region.code
    # Resume the portal's request here, as /authorize would with the new session: one browser
    # round trip fewer (each costs a citizen on a mobile network far more than the work).
    user = _session_user(services, resumed, sso)
    try:
        response = make_response(_answer(services, resumed, user, _resumed_request(resumed)))
    except TongxingError as error:
        # The portal's request no longer stands (say, the portal was removed meanwhile): the
        # person still signed in, so the page says why and the SSO session is kept.
        response = make_response(current_app.handle_user_exception(error))
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(services.settings.sso_session_lifetime.total_seconds()),
        secure=_secure(),
        httponly=True,
        samesite="Lax",
    )
    response.delete_cookie(BINDING_COOKIE, path="/callback/")
    return response
