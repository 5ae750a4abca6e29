"""The chooser page's view of the regions: grouped by kind, searched, the remembered one first.

With 31 provinces, 4 municipalities, 5 autonomous regions, 2 SARs, the XPCC and 46 national
departments, a flat list of 80 radio buttons is not usable. The page therefore shows:

* the region chosen last (the ``REGION_COOKIE``) first, in a group of its own;
* then one group per :class:`~tongxing_api.vocabulary.RegionKind`, in the order of
  :data:`KIND_ORDER`, each with a bilingual heading and its regions by code;
* only the regions that match ``q``, when the person searched: a plain GET form, so the search
  works without JavaScript (WCAG 2.2 SC 3.2.2: nothing changes until the person submits).

A region matches when ``q`` (case- and width-folded) is part of its code, its Chinese name or
its English name. Pinyin initials would need a pinyin table for every Chinese character; the
codes are already pinyin abbreviations (``zj``, ``gd``), so they are left out.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from gateway.registry import Region
from tongxing_api.vocabulary import RegionKind

MAX_QUERY: Final = 64
"""A search longer than this is cut: no region name is longer (``NAME_MAX_LENGTH``)."""

KIND_ORDER: Final[tuple[RegionKind, ...]] = (
    RegionKind.PROVINCE,
    RegionKind.MUNICIPALITY,
    RegionKind.AUTONOMOUS_REGION,
    RegionKind.SAR,
    RegionKind.CORPS,
    RegionKind.DEPARTMENT,
    RegionKind.ENTERPRISE,
)
KIND_HEADINGS: Final[dict[RegionKind, tuple[str, str]]] = {
    RegionKind.PROVINCE: ("省", "Provinces"),
    RegionKind.MUNICIPALITY: ("直辖市", "Municipalities"),
    RegionKind.AUTONOMOUS_REGION: ("自治区", "Autonomous regions"),
    RegionKind.SAR: ("特别行政区", "Special administrative regions"),
    RegionKind.CORPS: ("新疆生产建设兵团", "Xinjiang Production and Construction Corps"),
    RegionKind.DEPARTMENT: ("国家部门", "National departments"),
    RegionKind.ENTERPRISE: ("电子营业执照（企业）", "Electronic business licence (enterprises)"),
}
LAST_HEADING: Final = ("上次选择", "Your last choice")


@dataclass(frozen=True)
class RegionGroup:
    """One group of the chooser: its id (for ``aria-labelledby``), heading, and regions."""

    key: str
    heading: tuple[str, str]  # zh-CN, en
    regions: tuple[Region, ...]


@dataclass(frozen=True)
class ChooserView:
    """What the chooser page shows: the groups, the search as understood, how many match."""

    groups: tuple[RegionGroup, ...]
    query: str
    matches: int
    total: int


def normalise_query(query: str | None) -> str:
    """``q`` as searched: NFKC-folded (full-width letters are ASCII), lower case, trimmed, cut."""
    if not query:
        return ""
    return unicodedata.normalize("NFKC", query[: MAX_QUERY * 2]).casefold().strip()[:MAX_QUERY]


def matches(region: Region, query: str) -> bool:
    """Whether ``region`` answers the normalised ``query``: part of its code or either name."""
    if not query:
        return True
    texts = (region.code, region.names.zh, region.names.en)
    return any(query in unicodedata.normalize("NFKC", text).casefold() for text in texts)


def chooser_view(regions: Iterable[Region], last: str | None, query: str | None) -> ChooserView:
    """The chooser's groups for ``regions`` (the enabled ones), ``last`` first, ``query`` kept."""
    everything = list(regions)
    wanted = normalise_query(query)
    found = [region for region in everything if matches(region, wanted)]
    remembered = [region for region in found if region.code == last]
    groups: list[RegionGroup] = []
    if remembered:
        groups.append(RegionGroup("last", LAST_HEADING, tuple(remembered)))
    for kind in KIND_ORDER:
        members = sorted(
            (r for r in found if r.kind is kind and r.code != last), key=lambda r: r.code
        )
        if members:
            groups.append(RegionGroup(kind.value, KIND_HEADINGS[kind], tuple(members)))
    return ChooserView(tuple(groups), wanted, len(found), len(everything))


__all__ = [
    "KIND_HEADINGS",
    "KIND_ORDER",
    "LAST_HEADING",
    "MAX_QUERY",
    "ChooserView",
    "RegionGroup",
    "chooser_view",
    "matches",
    "normalise_query",
]
