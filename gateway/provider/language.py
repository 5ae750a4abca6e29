"""Which of the pages' two languages leads: the portal's ``ui_locales``, else ``Accept-Language``.

Every page of the gateway says everything in Chinese and in English. Which of the two comes
first (``<html lang>`` and the order of each pair of texts) follows, in this order:

1. the portal's ``ui_locales`` (OIDC Core §3.1.2.1; RP-Initiated Logout 1.0 §2 for the logout
   pages), a space-separated list of BCP 47 tags in the person's order of preference, kept on
   the pending authorization for the pages of a sign-in;
2. the browser's ``Accept-Language`` (RFC 9110 §12.5.4), by quality, ties in the order given;
3. Chinese.

The first tag whose primary subtag is ``zh`` or ``en`` decides; tags in other languages are
passed over (a person who prefers ``fr, en`` reads English first). Both inputs come from the
network, so only their first :data:`MAX_INPUT` characters and :data:`MAX_TAGS` tags are read
(THREAT_MODEL row 7: bad input costs a bounded amount of work).
"""

from __future__ import annotations

from typing import Final, Literal

from flask import g, has_request_context, request

Lead = Literal["zh-CN", "en"]
ZH: Final[Lead] = "zh-CN"
EN: Final[Lead] = "en"
DEFAULT: Final[Lead] = ZH

MAX_INPUT: Final = 512
MAX_TAGS: Final = 16
UI_LOCALES_KEY: Final = "tongxing_ui_locales"  # on flask.g: the sign-in's stored ui_locales


def _primary(tag: str) -> Lead | None:
    primary = tag.strip().split("-", 1)[0].split("_", 1)[0].lower()
    return ZH if primary == "zh" else EN if primary == "en" else None


def from_ui_locales(ui_locales: str | None) -> Lead | None:
    """The lead ``ui_locales`` names (OIDC Core §3.1.2.1), or ``None`` when it names neither."""
    if not ui_locales:
        return None
    for tag in ui_locales[:MAX_INPUT].split()[:MAX_TAGS]:
        lead = _primary(tag)
        if lead is not None:
            return lead
    return None


def from_accept_language(header: str | None) -> Lead | None:
    """The lead an ``Accept-Language`` header prefers (RFC 9110 §12.5.4), or ``None``.

    Highest quality first, ties in the order given; ``q=0`` means "not this one"; ``*`` and
    other languages are passed over.
    """
    if not header:
        return None
    ranked: list[tuple[float, int, Lead]] = []
    for index, item in enumerate(header[:MAX_INPUT].split(",")[:MAX_TAGS]):
        tag, _, params = item.partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        lead = _primary(tag)
        if lead is not None and 0.0 < quality <= 1.0:
            ranked.append((-quality, index, lead))
    return min(ranked)[2] if ranked else None


def lead_language(ui_locales: str | None, accept_language: str | None) -> Lead:
    """``ui_locales`` first, then ``Accept-Language``, then Chinese."""
    return from_ui_locales(ui_locales) or from_accept_language(accept_language) or DEFAULT


def current_lead(ui_locales: str | None = None) -> Lead:
    """The lead for this request: ``ui_locales`` given (the sign-in's stored one), else one on
    :data:`flask.g`, else one in the request's own parameters (``/authorize``, ``/logout``),
    else the browser's ``Accept-Language``."""
    if not has_request_context():
        return DEFAULT
    if ui_locales is None:
        ui_locales = g.get(UI_LOCALES_KEY)
    if ui_locales is None:
        try:
            asked = request.values.get("ui_locales")
        except (UnicodeDecodeError, ValueError):  # raw non-UTF-8 bytes: the page says so
            asked = None
        ui_locales = asked if isinstance(asked, str) else None
    return lead_language(ui_locales, request.headers.get("Accept-Language"))


def template_values() -> dict[str, str]:
    """The context every page is rendered with (a Flask context processor): ``lead``."""
    return {"lead": current_lead()}


__all__ = [
    "DEFAULT",
    "EN",
    "MAX_INPUT",
    "MAX_TAGS",
    "UI_LOCALES_KEY",
    "ZH",
    "Lead",
    "current_lead",
    "from_accept_language",
    "from_ui_locales",
    "lead_language",
    "template_values",
]
