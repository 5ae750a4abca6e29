"""Errors as values with codes: one type serves the HTTP pages, the JSON API and the logs.

``code`` is the OAuth 2.0 / OIDC error code where one applies (RFC 6749 §4.1.2.1 and §5.2,
OIDC Core §3.1.2.6); people see ``title``/``message`` in zh-CN first and English second.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GatewayError(Exception):
    """A failure the gateway explains to whoever caused it, without leaking internals."""

    code: str
    title_zh: str
    title_en: str
    message_zh: str
    message_en: str
    status: int = 400
    details: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.code}: {self.message_en}")


def invalid_request(message_zh: str, message_en: str) -> GatewayError:
    return GatewayError(
        "invalid_request", "请求无效", "Invalid request", message_zh, message_en, status=400
    )


def not_found() -> GatewayError:
    return GatewayError(
        "not_found",
        "页面不存在",
        "Page not found",
        "您访问的地址不存在。",
        "The address you opened does not exist.",
        status=404,
    )


def method_not_allowed() -> GatewayError:
    return GatewayError(
        "invalid_request",
        "请求方式不被支持",
        "Method not allowed",
        "此地址不接受该请求方式。",
        "This address does not accept that method.",
        status=405,
    )


def server_error() -> GatewayError:
    return GatewayError(
        "server_error",
        "服务暂时不可用",
        "Service temporarily unavailable",
        "网关内部出现问题，请稍后重试。",
        "Something went wrong inside the gateway; try again later.",
        status=500,
    )
