"""What can go wrong while the gateway signs a person in at a region, one class per failure.

Errors are values with codes (house rule 7): each class is a :class:`gateway.errors.TongxingError`
with a stable ``code`` for logs, metrics and the page template, a short message for people in
zh-CN and in English, and the HTTP status the gateway answers with (the one error handler renders
them; no view converts them). ``detail`` is for operators (a structured log line): it never holds
a secret, a token or an identity number, and is never shown to the person as is.

Classes are named after the failure they stand for (``StateMismatch``, ``RegionUnavailable``),
which reads better at the ``except`` than an ``Error`` suffix would.
"""

from __future__ import annotations

from gateway import errors

__all__ = [
    "BrokerError",
    "CallbackInvalid",
    "IdentityNumberInvalid",
    "IdentityNumberMissing",
    "InvalidUpstreamToken",
    "LoginExpired",
    "MixUpError",
    "RegionMetadataInvalid",
    "RegionUnavailable",
    "StateMismatch",
    "TokenExchangeFailed",
    "UpstreamAccessDenied",
    "UpstreamError",
    "UpstreamInteractionRequired",
]


class BrokerError(errors.TongxingError):
    """A sign-in at a region failed. Subclasses say why; ``region`` is the region's code."""

    code = "broker_error"
    status = 400
    title_zh = "地区登录失败"
    title_en = "Sign-in at your region failed"
    message_zh = "登录失败，请稍后重试。"
    message_en = "Sign-in failed. Please try again later."

    def __init__(self, region: str, detail: str) -> None:
        self.region = region
        super().__init__(f"region {region}: {detail}")


class RegionUnavailable(BrokerError):  # noqa: N818 - named after the failure
    """The region's identity provider cannot be reached, is too slow, or answers nonsense."""

    code = "region_unavailable"
    message_zh = "该地区的身份认证服务暂时无法访问，请稍后重试，或选择其他地区登录。"
    message_en = (
        "The identity service of this region is unavailable right now. Please try again later."
    )
    status = 503


class RegionMetadataInvalid(RegionUnavailable):
    """The region's discovery document or key set is unusable (e.g. its ``issuer`` differs).

    OpenID Connect Discovery 1.0 §4.3: the ``issuer`` in the document must be exactly the one the
    gateway was configured with; anything else is a misconfiguration or an impersonation.
    """

    code = "region_metadata_invalid"


class UpstreamError(BrokerError):
    """The region's identity provider answered the authorization request with an error.

    RFC 6749 §4.1.2.1. ``error`` is the provider's code; ``error_description`` its text, cut to
    a safe length and stripped of control characters (it is attacker-reachable input).
    """

    code = "upstream_error"
    message_zh = "地区身份认证服务返回了错误，登录未完成。"
    message_en = "The identity service of this region returned an error; sign-in did not finish."
    status = 502

    def __init__(self, region: str, error: str, error_description: str | None = None) -> None:
        self.error = error
        self.error_description = error_description
        detail = f"upstream error {error!r}"
        if error_description:
            detail += f": {error_description}"
        super().__init__(region, detail)


class UpstreamAccessDenied(UpstreamError):  # noqa: N818 - named after the failure
    """The person cancelled, or the provider refused them (``access_denied``)."""

    code = "upstream_access_denied"
    message_zh = "登录已取消或被拒绝。"
    message_en = "Sign-in was cancelled or refused."
    status = 403


class UpstreamInteractionRequired(UpstreamError):  # noqa: N818 - named after the failure
    """``prompt=none`` could not be honoured (OIDC Core §3.1.2.6: login_required etc.)."""

    code = "upstream_interaction_required"
    message_zh = "需要在地区身份认证服务重新登录。"
    message_en = "You need to sign in again at the identity service of this region."
    status = 401


class TokenExchangeFailed(UpstreamError):  # noqa: N818 - named after the failure
    """The token endpoint refused the code (RFC 6749 §5.2), e.g. a replayed code."""

    code = "upstream_token_error"


class MixUpError(BrokerError):
    """The response did not come from the provider the request was sent to.

    RFC 9207 §2.4 (``iss`` authorization response parameter) and RFC 9700 §4.4 (mix-up attacks):
    a response whose ``iss`` names another issuer, or that arrives at another region's callback,
    is refused before the code is sent anywhere.
    """

    code = "issuer_mismatch"
    message_zh = "登录响应来自错误的身份认证服务，已被拒绝。请重新登录。"
    message_en = "The sign-in response came from the wrong identity service and was refused."


class StateMismatch(BrokerError):  # noqa: N818 - named after the failure
    """The ``state`` of the response does not belong to a sign-in this browser started.

    RFC 6749 §10.12 (CSRF) and OIDC Core §3.1.2.7: the response is not bound to the transaction.
    """

    code = "state_mismatch"
    message_zh = "登录请求无效或已被使用，请重新登录。"
    message_en = "This sign-in request is invalid or was already used. Please sign in again."


class LoginExpired(BrokerError, errors.LoginExpired):  # noqa: N818 - named after the failure
    """The sign-in took longer than the transaction lives (the region's side of login_expired)."""

    code = "login_expired"
    message_zh = "登录已超时，请重新登录。"
    message_en = "The sign-in took too long. Please sign in again."


class CallbackInvalid(BrokerError):  # noqa: N818 - named after the failure
    """The callback is malformed: no code, a repeated parameter (RFC 6749 §3.1), junk values."""

    code = "callback_invalid"
    message_zh = "登录响应格式错误，请重新登录。"
    message_en = "The sign-in response is malformed. Please sign in again."


class InvalidUpstreamToken(BrokerError):  # noqa: N818 - named after the failure
    """The ID token failed validation (OIDC Core §3.1.3.7). ``reason`` says which check."""

    code = "invalid_upstream_token"
    message_zh = "地区身份认证服务返回的身份令牌无效，登录未完成。"
    message_en = "The identity token from this region is invalid; sign-in did not finish."
    status = 502

    def __init__(self, region: str, reason: str) -> None:
        self.reason = reason
        super().__init__(region, reason)


class StaleAuthentication(InvalidUpstreamToken):
    """The region's ``auth_time`` is older than the ``max_age`` asked for (OIDC Core §3.1.3.7
    step 13): the sign-in answers the portal ``login_required`` rather than call it fresh."""

    code = "upstream_authentication_stale"
    message_zh = "地区身份认证服务未按要求重新验证您的身份，登录未完成。"
    message_en = "This region did not verify you again as required; sign-in did not finish."
    status = 401


class IdentityNumberMissing(BrokerError):  # noqa: N818 - named after the failure
    """The region asserted no resident identity number (its claim mapping or mapper is wrong)."""

    code = "identity_number_missing"
    message_zh = "地区身份认证服务未提供居民身份证号码，无法完成全国统一身份登录。"
    message_en = "The region did not provide a resident identity number, so sign-in cannot finish."
    status = 502


class IdentityNumberInvalid(BrokerError):  # noqa: N818 - named after the failure
    """The region asserted a value that is not a GB 11643-1999 identity number.

    ``reason`` comes from :class:`gateway.identity.IdentityNumberError` and never repeats the
    number itself.
    """

    code = "identity_number_invalid"
    message_zh = "地区身份认证服务提供的居民身份证号码格式无效。"
    message_en = "The resident identity number provided by the region is not valid."
    status = 502

    def __init__(self, region: str, reason: str) -> None:
        self.reason = reason
        super().__init__(region, reason)
