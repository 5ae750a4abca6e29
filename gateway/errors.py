"""Errors as values with codes: one type serves the pages, the JSON API and the logs.

House rule 7. Every error the gateway explains is a subclass of :class:`TongxingError`, one class
per named error, with class-level

* ``code``: the OAuth 2.0 / OIDC error code where one applies (RFC 6749 §4.1.2.1 and §5.2,
  RFC 6750 §3.1, OIDC Core §3.1.2.6), else the gateway's own stable code;
* ``status``: the HTTP status the answer carries;
* ``title_zh``/``title_en`` and ``message_zh``/``message_en``: what people read, zh-CN first.

An instance adds only what differs per occurrence: a message that names something ("region zj
is managed by another owner"), filled in by the class from the names it is given; ``details``,
machine-readable extras the JSON answer carries (the admin API's ``fields``); and ``detail``, a
line for operators' logs that is never shown (it never holds a secret, a token or an identity
number). :func:`gateway.app.render_error` turns any of them into a page for people or JSON for
API callers, and logs the line.

Subclasses elsewhere: :class:`gateway.broker.errors.BrokerError` (sign-in at a region fails) and
:class:`gateway.mfa.MfaError` (the second factor). Classes are named after the failure they stand
for, which reads better at the ``except`` than an ``Error`` suffix would.
"""

# Classes are named after the failure (the module docstring says why), not with an Error suffix.
# ruff: noqa: N818

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "CallbackNotRecognised",
    "ConsentRequestExpired",
    "FieldError",
    "FormExpired",
    "IdentityConflict",
    "InsufficientScope",
    "InvalidDocument",
    "InvalidPolicySet",
    "InvalidRequest",
    "InvalidToken",
    "LoginExpired",
    "LoginRequired",
    "LogoutClientMismatch",
    "LogoutHintForeign",
    "LogoutHintInvalid",
    "LogoutRedirectUnregistered",
    "LogoutRefused",
    "ManagedByAnother",
    "MethodNotAllowed",
    "NoRoleAllowed",
    "NotFound",
    "RegistrationChanged",
    "RegistrationNotFound",
    "RegistrationTaken",
    "RoleRefused",
    "ServerError",
    "SignInFromAnotherBrowser",
    "SignInLinkExpired",
    "TongxingError",
    "UnknownClient",
    "UnregisteredRedirectUri",
    "UnsupportedResponseType",
    "UnverifiedClient",
]

#: One entry of the admin API's ``fields`` list: ``{"field": ..., "message": ...}``.
FieldError = dict[str, str]

_TEXTS = ("code", "title_zh", "title_en", "message_zh", "message_en")


class TongxingError(Exception):
    """A failure the gateway explains to whoever caused it, without leaking internals.

    Raise a subclass: each names one error. ``message_zh``/``message_en`` are class defaults an
    instance may replace (only for texts that name something); the rest is fixed per class.
    """

    code: ClassVar[str]
    status: ClassVar[int]
    title_zh: ClassVar[str]
    title_en: ClassVar[str]
    message_zh: str
    message_en: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Fail at import, not when the first person meets the error.
        missing = [name for name in (*_TEXTS, "status") if not getattr(cls, name, None)]
        if missing:
            raise TypeError(f"{cls.__qualname__} lacks {', '.join(missing)}")

    def __init__(
        self,
        detail: str = "",
        *,
        message_zh: str | None = None,
        message_en: str | None = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        if type(self) is TongxingError:
            raise TypeError("raise a subclass of TongxingError: one class per named error")
        if message_zh is not None:
            self.message_zh = message_zh
        if message_en is not None:
            self.message_en = message_en
        self.detail = detail
        self.details: dict[str, object] = dict(details or {})
        super().__init__(f"[{self.code}] {detail or self.message_en}")

    def title(self, language: str = "zh-CN") -> str:
        """The title for people, in zh-CN unless ``language`` asks for English."""
        return self.title_en if _english(language) else self.title_zh

    def message(self, language: str = "zh-CN") -> str:
        """The message for people, in zh-CN unless ``language`` asks for English."""
        return self.message_en if _english(language) else self.message_zh


def _english(language: str) -> bool:
    return language.lower().startswith("en")


# --- any request --------------------------------------------------------------------------------


class InvalidRequest(TongxingError):
    """RFC 6749 §4.1.2.1 / §5.2 ``invalid_request``: the request is malformed."""

    code = "invalid_request"
    status = 400
    title_zh = "请求无效"
    title_en = "Invalid request"
    message_zh = "请求格式不正确。"
    message_en = "The request is malformed."


class MethodNotAllowed(InvalidRequest):
    """The address exists but not for this HTTP method."""

    status = 405
    title_zh = "请求方式不被支持"
    title_en = "Method not allowed"
    message_zh = "此地址不接受该请求方式。"
    message_en = "This address does not accept that method."


class FormExpired(InvalidRequest):
    """A form came back without the CSRF token of this browser's session (or a stale one)."""

    title_zh = "请求已失效"
    title_en = "Form expired"
    message_zh = "页面已过期，请重新打开。"
    message_en = "This page has expired; open it again."


class NotFound(TongxingError):
    """Nothing lives at this address."""

    code = "not_found"
    status = 404
    title_zh = "页面不存在"
    title_en = "Page not found"
    message_zh = "您访问的地址不存在。"
    message_en = "The address you opened does not exist."


class ServerError(TongxingError):
    """Something unexpected broke; the log has the traceback, the person a calm page."""

    code = "server_error"
    status = 500
    title_zh = "服务暂时不可用"
    title_en = "Service temporarily unavailable"
    message_zh = "网关内部出现问题，请稍后重试。"
    message_en = "Something went wrong inside the gateway; try again later."


# --- signing in (the portal's request, the region's answer, the pages between) ------------------


class UnverifiedClient(TongxingError):
    """The authorization request names no registered client or redirect URI.

    RFC 6749 §4.1.2.1: the error must not be sent to an unverified redirect URI, so the person
    gets a page. ``code`` is the OAuth error the request earned; one subclass per code.
    """

    code = "invalid_client"
    status = 400
    title_zh = "无法完成登录"
    title_en = "Sign-in cannot continue"
    message_zh = "发起登录的网站未正确注册（应用标识或回调地址无效）。请联系该网站。"
    message_en = (
        "The site that sent you here is not registered correctly (unknown client or redirect "
        "URI). Please contact that site."
    )


class UnknownClient(UnverifiedClient):
    """``client_id`` is missing or names no registered portal (``invalid_client``)."""


class UnregisteredRedirectUri(UnverifiedClient):
    """``redirect_uri`` is missing, repeated or not registered, exactly, for the portal."""

    code = "invalid_request"


class UnsupportedResponseType(UnverifiedClient):
    """``response_type`` is not ``code``, and the redirect URI could not be verified."""

    code = "unsupported_response_type"


class CallbackNotRecognised(InvalidRequest):
    """``/callback/<region>`` names no region, or carries no ``state``."""

    message_zh = "登录回调无效。"
    message_en = "This sign-in callback is not valid."


class LoginExpired(TongxingError):
    """The sign-in this page belongs to is over (expired, used, or never started here)."""

    code = "login_expired"
    status = 400
    title_zh = "登录已过期"
    title_en = "Sign-in expired"
    message_zh = "请返回原网站重新登录。"
    message_en = "Go back to the site and sign in again."


class SignInLinkExpired(LoginExpired):
    """The region's answer names a login transaction that expired or was already used."""

    message_zh = "此登录链接已失效或已被使用，请返回原网站重新登录。"
    message_en = (
        "This sign-in link has expired or was already used. Go back to the site and sign in again."
    )


class ConsentRequestExpired(LoginExpired):
    """The consent page's answer has no pending request, session or matching CSRF token."""

    title_zh = "请求已失效"
    title_en = "Request expired"


class SignInFromAnotherBrowser(TongxingError):
    """The region's answer reached a browser that did not start the sign-in.

    RFC 6749 §10.12: the binding cookie set when the person left for the region is missing or
    does not match, so a callback URL planted by someone else is refused.
    """

    code = "login_csrf"
    status = 400
    title_zh = "登录请求与浏览器不匹配"
    title_en = "Sign-in does not belong to this browser"
    message_zh = "这个登录回调不是由本浏览器发起的，已被拒绝。"
    message_en = "This sign-in was not started in this browser and has been refused."


class IdentityConflict(TongxingError):
    """The regional account is already linked to another national subject."""

    code = "identity_conflict"
    status = 409
    title_zh = "身份信息冲突"
    title_en = "Identity conflict"
    message_zh = "该地区账号已关联到另一位公民身份，登录被拒绝。请联系地区身份服务。"
    message_en = "This regional account is linked to another national identity; sign-in refused."


class LoginRequired(TongxingError):
    """A page for signed-in people was opened without an SSO session (OIDC Core §3.1.2.6)."""

    code = "login_required"
    status = 401
    title_zh = "请先登录"
    title_en = "Sign in first"
    message_zh = "查看和撤销授权需要先通过任一网站登录。"
    message_en = "Sign in through any portal to see and withdraw your consents."


# --- signing out (RP-Initiated Logout 1.0) ------------------------------------------------------


class LogoutRefused(InvalidRequest):
    """A logout request the gateway will not act on; subclasses say why."""

    title_zh = "无法退出登录"
    title_en = "Cannot sign out"


class LogoutHintInvalid(LogoutRefused):
    """``id_token_hint`` is not a token whose signature the key ring accepts."""

    message_zh = "id_token_hint 无效。"
    message_en = "The id_token_hint is not valid."


class LogoutHintForeign(LogoutRefused):
    """``id_token_hint`` was issued by another issuer."""

    message_zh = "id_token_hint 不是本网关签发的。"
    message_en = "The id_token_hint is not ours."


class LogoutClientMismatch(LogoutRefused):
    """``client_id`` names another portal than the hint's audience."""

    message_zh = "client_id 与 id_token_hint 不一致。"
    message_en = "client_id does not match the id_token_hint."


class LogoutRedirectUnregistered(LogoutRefused):
    """``post_logout_redirect_uri`` is not registered, exactly, for the portal (§3)."""

    message_zh = "退出后的跳转地址未在该网站的注册信息中。"
    message_en = "post_logout_redirect_uri is not registered for this portal."


# --- the admin API (bearer tokens: RFC 6750 §3.1) ------------------------------------------------


class InvalidToken(TongxingError):
    """No bearer token, or one that names no principal."""

    code = "invalid_token"
    status = 401
    title_zh = "未授权"
    title_en = "Unauthorized"
    message_zh = "需要有效的管理令牌。"
    message_en = "A valid admin bearer token is required."


class InsufficientScope(TongxingError):
    """The token is valid but does not allow this request; subclasses say why."""

    code = "insufficient_scope"
    status = 403
    title_zh = "权限不足"
    title_en = "Insufficient scope"
    message_zh = "此令牌不能执行此操作。"
    message_en = "This token may not do this."


class NoRoleAllowed(InsufficientScope):
    """The endpoint is not in the table of operations: refused to everyone (fail closed)."""

    message_zh = "此操作不对任何角色开放。"
    message_en = "No role may do this."


class RoleRefused(InsufficientScope):
    """The caller's role is not among those allowed the operation."""

    def __init__(self, role: str, operation: str) -> None:
        super().__init__(
            message_zh=f"角色 {role} 不能执行此操作（{operation}）。",
            message_en=f"The role {role} may not {operation}.",
        )


class ManagedByAnother(InsufficientScope):
    """An operator asked for a registration another owner manages (who is never named)."""

    def __init__(self, what: str, key: str) -> None:
        super().__init__(
            message_zh=f"{what} {key} 由其他所有者管理。",
            message_en=f"{what} {key} is managed by another owner.",
        )


class InvalidDocument(InvalidRequest):
    """The body or query is invalid; ``details["fields"]`` says where, one entry per field."""

    message_zh = "提交的内容有误，请检查各字段。"
    message_en = "The submitted document is invalid; see fields."

    def __init__(self, fields: Sequence[FieldError]) -> None:
        super().__init__(details={"fields": list(fields)})


class RegistrationNotFound(NotFound):
    """No region or portal is registered under this key."""

    title_zh = "不存在"
    title_en = "Not found"

    def __init__(self, what: str, key: str) -> None:
        super().__init__(message_zh=f"{what} {key} 不存在。", message_en=f"No {what} {key}.")


class RegistrationTaken(TongxingError):
    """409: the registration belongs to another owner, who is never named; nothing changed."""

    code = "registration_taken"
    status = 409
    title_zh = "登记已被占用"
    title_en = "Registration taken"
    message_zh = "该登记由其他所有者管理，未作任何更改。"
    message_en = "This registration is managed by another owner; nothing was changed."

    def __init__(self, what: str, key_field: str, key: str) -> None:
        why, message_zh, message_en = self._explain(what, key)
        super().__init__(
            message_zh=message_zh,
            message_en=message_en,
            details={"fields": [{"field": key_field, "message": why}]},
        )

    @staticmethod
    def _explain(what: str, key: str) -> tuple[str, str, str]:
        """The field message, and the zh-CN and English messages naming the registration."""
        why = f"{what} {key} is managed by another owner"
        return why, f"{what} {key} 由其他所有者管理，未作任何更改。", f"{why}; nothing was changed."


class RegistrationChanged(RegistrationTaken):
    """409: the registration changed between the owner check and the write; try again."""

    title_zh = "登记已被更改"
    title_en = "Registration changed"
    message_zh = "该登记在处理期间被更改，未作任何更改，请重试。"
    message_en = "This registration changed while the request was decided; try again."

    @staticmethod
    def _explain(what: str, key: str) -> tuple[str, str, str]:
        why = f"{what} {key} changed while this request was decided; try again"
        return why, f"{what} {key} 在处理期间被更改，未作任何更改，请重试。", f"{why}."


class InvalidPolicySet(TongxingError):
    """422: the policy files were refused whole; the previous set stays active.

    ``details`` carries ``problems`` (file and message each) and the ``active`` set.
    """

    code = "invalid_policy_set"
    status = 422
    title_zh = "策略集无效"
    title_en = "Invalid policy set"
    message_zh = "策略集被拒绝，之前的策略集仍然有效。"
    message_en = "the policy set was refused; the previous set stays active"

    def __init__(self, problems: Sequence[Mapping[str, str]], active: Mapping[str, Any]) -> None:
        super().__init__(
            f"policy set refused with {len(problems)} problem(s)",
            details={"problems": [dict(p) for p in problems], "active": dict(active)},
        )


# --- the way back from the logout at the region (RP-Initiated Logout 1.0 §3) ---------------------


class LogoutReturnInvalid(LogoutRefused):
    """The region sent the browser back with a ``state`` the gateway did not give for this
    region, that has expired, or that was used already: nobody is redirected anywhere."""

    message_zh = "退出登录的返回链接无效、已过期或已使用过，未跳转到任何网站。"
    message_en = (
        "This sign-out return link is not valid, has expired or was used already; "
        "you were not sent on to any site."
    )


# --- a logout at the region (OpenID Connect Back-Channel Logout 1.0) -----------------------------


class LogoutTokenInvalid(InvalidRequest):
    """A region's back-channel logout request the gateway does not act on (§2.6, §2.8): no
    ``logout_token``, an unknown or disabled region, or a token that fails a check of §2.6.
    ``detail`` (for the log) names the check; the answer does not."""

    title_zh = "退出登录通知无效"
    title_en = "Invalid logout notice"
    message_zh = "退出登录通知无效，未结束任何会话。"
    message_en = "The logout token is not valid; no session was ended."


# --- second factors (admin API) -------------------------------------------------------------------


class SubjectNotFound(NotFound):
    """The admin API names a national subject the gateway does not know."""

    code = "unknown_subject"
    title_zh = "用户不存在"
    title_en = "Unknown subject"
    message_zh = "不存在该用户。"
    message_en = "No subject with this id."


class NoSecondFactor(NotFound):
    """The subject has no second factor (bound or pending) to reset."""

    code = "no_second_factor"
    title_zh = "未设置动态口令"
    title_en = "No second factor"
    message_zh = "该用户未设置动态口令，未作任何更改。"
    message_en = "The subject has no second factor; nothing was changed."


class LogoutParameterTooLong(LogoutRefused):
    """A logout parameter is longer than any the gateway carries (THREAT_MODEL row 7)."""

    message_zh = "退出登录请求中的参数过长。"
    message_en = "A parameter of the sign-out request is too long."


class TooManyRequests(TongxingError):
    """RFC 6585 §4: too many requests from this address, client or principal in the window.

    Answered before any store access (:mod:`gateway.limits`), with ``Retry-After`` (RFC 9110
    §10.2.3) in seconds; ``details`` carries the same number as ``retry_after`` for API callers.
    """

    code = "too_many_requests"
    status = 429
    title_zh = "请求过于频繁"
    title_en = "Too many requests"
    message_zh = "请求过于频繁，请稍后再试。"
    message_en = "Too many requests. Please wait a moment and try again."


class RegionSecretUnreadable(ServerError):
    """A region's sealed client secret does not open with the configured sealing keys: a key
    was removed before ``tongxing secrets reseal`` moved every secret to the new one, or the row
    was tampered with (docs/security/secrets.md). The person sees the calm server-error page;
    the log names the region, never the secret."""

    message_zh = "该地区的登录暂时不可用，请稍后重试。"
    message_en = "Signing in through this region is temporarily unavailable; try again later."


class StoreUnavailable(TongxingError):
    """The store cannot be reached (a PostgreSQL restart, a failover): a clear 503 with
    ``Retry-After`` (RFC 9110 §15.6.4, §10.2.3) rather than a 500, and no traceback per request.
    Nothing was half-written: each store operation is one transaction. The gateway reconnects on
    its own when the store is back (the pool pre-pings)."""

    code = "temporarily_unavailable"
    status = 503
    title_zh = "服务暂时不可用"
    title_en = "Service temporarily unavailable"
    message_zh = "网关暂时无法访问其数据库，请稍后重试。"
    message_en = "The gateway cannot reach its database just now; try again shortly."
    retry_after = 5


# --- enterprises and mandates (issue 16) -------------------------------------------------------


class CreditCodeInvalid(TongxingError):
    """The e-business-licence system (an ``enterprise`` region) asserted a value that is not a
    GB 32100-2015 unified social credit code: wrong length, a letter outside the 31-symbol
    alphabet (I, O, Z, S, V), lower case, or a wrong check character. Nothing is recorded and
    no session opened. ``detail`` names the reason, never the value."""

    code = "credit_code_invalid"
    status = 502
    title_zh = "统一社会信用代码无效"
    title_en = "Invalid unified social credit code"
    message_zh = (
        "电子营业执照系统提供的统一社会信用代码格式不正确（应为 18 位，不含字母 I、O、Z、S、V，"
        "末位校验码须符合 GB 32100-2015），因此无法以企业身份登录。请联系电子营业执照服务。"
    )
    message_en = (
        "The unified social credit code the electronic business licence system sent is "
        "malformed (it must have 18 characters, none of the letters I, O, Z, S, V, and a check "
        "character that follows GB 32100-2015), so you cannot sign in for the enterprise. "
        "Please contact the electronic business licence service."
    )


class EnterpriseRoleInvalid(CreditCodeInvalid):
    """The e-business-licence system named no enterprise name or type, or a role other than
    ``legal_representative`` or ``agent``."""

    code = "enterprise_assertion_invalid"
    title_zh = "企业身份信息不完整"
    title_en = "Incomplete enterprise assertion"
    message_zh = "电子营业执照系统未提供完整的企业名称、类型或您的身份（法定代表人或经办人）。"
    message_en = (
        "The electronic business licence system did not say the enterprise's name and type "
        "and your role (legal representative or agent)."
    )


class NotLegalRepresentative(TongxingError):
    """Only a legal representative, signed in through the e-business-licence system in this
    session, may grant or revoke the enterprise's mandates."""

    code = "access_denied"
    status = 403
    title_zh = "仅限法定代表人"
    title_en = "Legal representatives only"
    message_zh = "只有通过电子营业执照登录的企业法定代表人才能授权或撤销经办人。"
    message_en = (
        "Only the enterprise's legal representative, signed in with the electronic business "
        "licence, may grant or revoke mandates."
    )


class MandateInvalid(InvalidRequest):
    """A mandate's terms do not stand: no portal or sector, an unknown one, a date not in the
    future or too far, a malformed identity number. ``message_*`` say which."""

    title_zh = "授权内容有误"
    title_en = "The mandate cannot be granted"


class PortalRefusesEnterprises(TongxingError):
    """The portal serves people only (its registration's ``subject_kinds``): nobody acts for an
    enterprise there, and no mandate is granted for it."""

    code = "access_denied"
    status = 403
    title_zh = "该门户不办理企业业务"
    title_en = "This portal does not serve enterprises"
    message_zh = "该门户只为个人办理业务，不能代表企业使用。"
    message_en = (
        "This portal serves individuals only; it cannot be used on behalf of an enterprise."
    )


class MandateNotLive(TongxingError):
    """The invitation or mandate is unknown, already used, revoked, expired, or for another
    person: one answer for every reason, so an invitation tells its holder nothing."""

    code = "access_denied"
    status = 403
    title_zh = "授权无效"
    title_en = "No valid mandate"
    message_zh = "该授权不存在、已被撤销、已过期或不属于您。请联系企业的法定代表人。"
    message_en = (
        "This mandate does not exist, was revoked, has expired or is not yours. Please "
        "contact the enterprise's legal representative."
    )


class NoEnterpriseToActFor(TongxingError):
    """The portal serves enterprises only, and the person holds no live mandate for it and did
    not sign in for an enterprise through the e-business-licence system."""

    code = "access_denied"
    status = 403
    title_zh = "没有可代表的企业"
    title_en = "No enterprise to act for"
    message_zh = (
        "该门户只办理企业业务，而您没有适用于该门户的有效企业授权。请通过电子营业执照登录，"
        "或请企业法定代表人为您授权。"
    )
    message_en = (
        "This portal serves enterprises only, and you hold no valid mandate of an enterprise "
        "for it. Sign in with the electronic business licence, or ask the enterprise's legal "
        "representative to grant you a mandate."
    )


# --- identity proofing and verified claims (issue 16, gateway.proofing) -------------------------


class ProofingNotAccepted(TongxingError):
    """A proofing provider's answer the gateway will not keep: it vouched for a trust framework
    or a claim the platform does not let it vouch for, it sent no usable ``verified_claims``, or
    it proofed another person than the one signed in (OpenID Connect for Identity Assurance 1.0).
    Nothing of it is kept; the log line names the provider and why, never a claim value."""

    code = "proofing_not_accepted"
    status = 403
    title_zh = "实名核验未通过"
    title_en = "Identity verification not accepted"
    message_zh = "核验机构返回的结果不能用于本次登录，请返回原网站重试或联系服务台。"
    message_en = (
        "The verification service's answer cannot be used for this sign-in. Go back to the site "
        "and try again, or contact the help desk."
    )


class ProofingUnavailable(TongxingError):
    """No proofing provider is configured, or it cannot be reached just now."""

    code = "proofing_unavailable"
    status = 503
    title_zh = "实名核验暂不可用"
    title_en = "Identity verification unavailable"
    message_zh = "实名核验服务暂时不可用，请稍后重试。"
    message_en = "The identity verification service is unavailable just now; try again later."


class VerificationTokenInvalid(TongxingError):
    """``/verification`` without a live access token of a portal (RFC 6750 §3.1)."""

    code = "invalid_token"
    status = 401
    title_zh = "未授权"
    title_en = "Unauthorized"
    message_zh = "需要该用户有效的访问令牌。"
    message_en = "A valid access token of the person is required."


# --- OpenID Federation 1.0 (issue 17): the error codes of §8.9 --------------------------------


class FederationError(TongxingError):
    """A federation endpoint's refusal (OpenID Federation 1.0 §8.9): JSON ``error`` and
    ``error_description``, the status the section gives for the code."""

    code = "invalid_request"
    status = 400
    title_zh = "联邦请求无效"
    title_en = "Invalid federation request"
    message_zh = "联邦请求缺少参数或参数无效。"
    message_en = "The federation request is missing a parameter or has an invalid one."


class FederationNotFound(FederationError):
    """§8.9 ``not_found``: the entity is not a subordinate of this trust anchor."""

    code = "not_found"
    status = 404
    message_zh = "该实体不是本信任锚的下级实体。"
    message_en = "The entity is not a subordinate of this trust anchor."


class FederationInvalidTrustAnchor(FederationError):
    """§8.9 ``invalid_trust_anchor``: the trust anchor asked for is not this gateway."""

    code = "invalid_trust_anchor"
    status = 404
    message_zh = "本解析端点只解析到本信任锚的信任链。"
    message_en = "This resolver resolves trust chains to this trust anchor only."


class FederationInvalidTrustChain(FederationError):
    """§8.9 ``invalid_trust_chain``: the chain to the subject does not verify."""

    code = "invalid_trust_chain"
    status = 400
    message_zh = "无法建立并验证到该实体的信任链。"
    message_en = "No valid trust chain to the entity could be built."


class FederationInvalidMetadata(FederationError):
    """§8.9 ``invalid_metadata``: the subject's metadata breaks the federation's policy."""

    code = "invalid_metadata"
    status = 400
    message_zh = "该实体的元数据不符合联邦元数据策略。"
    message_en = "The entity's metadata does not satisfy the federation's metadata policy."


class FederationUnsupportedParameter(FederationError):
    """§8.9 ``unsupported_parameter``: a parameter the endpoint does not support."""

    code = "unsupported_parameter"
    status = 400
    message_zh = "联邦端点不支持该参数。"
    message_en = "The federation endpoint does not support this parameter."


# --- automatic registration (OpenID Federation 1.0 §12.1; A18) --------------------------------


class AutomaticRegistrationRefused(FederationError):
    """An entity identifier that cannot sign in by automatic registration (§12.1): too long
    for a client identifier, or a portal that is registered and signs in by its client id."""

    code = "invalid_client"
    status = 400
    message_zh = "该实体不能通过自动注册登录。"
    message_en = "This entity cannot sign in by automatic registration."


class FederatedClientRefused(UnverifiedClient):
    """The authorization request's ``client_id`` is an entity identifier whose trust chain to
    this trust anchor does not resolve (§12.1, §10): not a subordinate, a statement expired or
    badly signed, metadata breaking the policy (``invalid_client``, a page: the redirect URI
    cannot be trusted)."""

    message_zh = "发起登录的网站未能通过联邦信任链验证（OpenID Federation）。请联系该网站。"
    message_en = (
        "The site that sent you here could not be verified through the federation's trust "
        "chain (OpenID Federation). Please contact that site."
    )


class InvalidRequestObject(UnverifiedClient):
    """RFC 9101 §6.3 ``invalid_request_object``: the request object of an automatically
    registered portal does not verify with the keys of its resolved metadata (§12.1.1.1), or
    its claims are wrong (``iss``, ``aud``, ``exp``, ``jti``, ``client_id``)."""

    code = "invalid_request_object"
    message_zh = "发起登录的网站发送的签名请求无效。请联系该网站。"
    message_en = "The signed request the site sent is not valid. Please contact that site."


class RequestObjectRequired(UnverifiedClient):
    """§12.1.1: an automatically registered portal sends its authorization request as a signed
    request object (the ``request`` parameter, RFC 9101 §5.1); without one, ``invalid_request``
    (a page: the redirect URI is only trusted once signed)."""

    code = "invalid_request"
    message_zh = "发起登录的网站须以签名请求对象发起登录。请联系该网站。"
    message_en = "The site must send its sign-in request as a signed request object."


class ExplicitRegistrationInvalidClientMetadata(FederationError):
    """OpenID Federation 1.0 §12.2.2 step 6, §12.2.4 (RFC 7591 §3.2.2
    ``invalid_client_metadata``): the portal's resolved ``openid_relying_party`` metadata is not
    one this OP registers (X19)."""

    code = "invalid_client_metadata"
    status = 400
    message_zh = "该网站的联邦元数据不能用于显式注册。"
    message_en = "The entity's relying party metadata cannot be registered by this OP."


class ExplicitRegistrationInvalidRedirectUri(FederationError):
    """§12.2.4 (RFC 7591 §3.2.2 ``invalid_redirect_uri``): a redirect URI of the resolved
    metadata is one the gateway does not take (X19)."""

    code = "invalid_redirect_uri"
    status = 400
    message_zh = "该网站的重定向地址无效。"
    message_en = "A redirect URI of the entity's metadata is not valid."


class InvalidRequestUri(UnverifiedClient):
    """RFC 9126 §4 (task P20): the ``request_uri`` brought to ``/authorize`` names no pushed
    request this portal may use: unknown, expired, already used, another portal's, or not a
    reference this gateway issued (an URL is never fetched: THREAT_MODEL row 1). A page, since
    the redirect URI is only known from the pushed request (``invalid_request_uri``, RFC 9101
    §6.2)."""

    code = "invalid_request_uri"
    message_zh = "该登录请求已失效或已被使用。请回到发起登录的网站重新开始。"
    message_en = (
        "This sign-in request has expired or was already used. Please go back to the site "
        "that sent you here and start again."
    )
