"""The chooser's grouping and search, and which language leads (issue 15)."""

from __future__ import annotations

import pytest

from gateway.provider.chooser import chooser_view, matches, normalise_query
from gateway.provider.language import from_accept_language, from_ui_locales, lead_language
from gateway.registry import Region
from tongxing_api.vocabulary import Names, RegionKind


def region(code: str, kind: RegionKind, zh: str, en: str) -> Region:
    return Region(
        code=code,
        names=Names(zh=zh, en=en),
        kind=kind,
        issuer=f"https://{code}.idp.example.cn",
        client_id="tongxing",
        client_secret="s" * 24,  # type: ignore[arg-type]
    )


REGIONS = [
    region("mps", RegionKind.DEPARTMENT, "公安部", "Ministry of Public Security"),
    region("zj", RegionKind.PROVINCE, "浙江", "Zhejiang"),
    region("bj", RegionKind.MUNICIPALITY, "北京", "Beijing"),
    region("gd", RegionKind.PROVINCE, "广东", "Guangdong"),
    region("xj-bt", RegionKind.CORPS, "新疆生产建设兵团", "XPCC"),
    region("hk", RegionKind.SAR, "香港", "Hong Kong"),
    region("nm", RegionKind.AUTONOMOUS_REGION, "内蒙古", "Inner Mongolia"),
]


def test_the_chooser_groups_regions_by_kind_in_order_and_by_code_within() -> None:
    view = chooser_view(REGIONS, None, None)
    assert [g.key for g in view.groups] == [
        "province",
        "municipality",
        "autonomous-region",
        "sar",
        "corps",
        "department",
    ]
    assert [r.code for r in view.groups[0].regions] == ["gd", "zj"]
    assert view.groups[0].heading == ("省", "Provinces")
    assert (view.matches, view.total) == (7, 7)


def test_the_remembered_region_comes_first_and_only_once() -> None:
    view = chooser_view(REGIONS, "mps", None)
    assert view.groups[0].key == "last"
    assert [r.code for r in view.groups[0].regions] == ["mps"]
    assert "department" not in [g.key for g in view.groups]  # its only member is shown first
    assert sum(len(g.regions) for g in view.groups) == 7


def test_an_unknown_remembered_region_adds_no_group() -> None:
    assert chooser_view(REGIONS, "xx", None).groups[0].key == "province"


@pytest.mark.parametrize(
    ("query", "codes"),
    [
        ("ZJ", ["zj"]),
        ("浙江", ["zj"]),
        ("hong", ["hk"]),
        ("ｂｅｉｊｉｎｇ", ["bj"]),  # full-width letters, as a Chinese keyboard types them
        ("  ministry of ", ["mps"]),
        ("g", ["bj", "gd", "hk", "nm", "zj"]),
    ],
)
def test_the_search_matches_code_and_both_names(query: str, codes: list[str]) -> None:
    view = chooser_view(REGIONS, None, query)
    assert sorted(r.code for g in view.groups for r in g.regions) == codes


def test_a_search_that_matches_nothing_leaves_no_group_and_says_so() -> None:
    view = chooser_view(REGIONS, "zj", "亚特兰蒂斯")
    assert (view.groups, view.matches, view.query) == ((), 0, "亚特兰蒂斯")


def test_the_search_is_bounded() -> None:
    assert len(normalise_query("x" * 10_000)) == 64
    assert normalise_query(None) == ""
    assert matches(REGIONS[0], "")


@pytest.mark.parametrize(
    ("ui_locales", "header", "lead"),
    [
        (None, None, "zh-CN"),
        ("en", "zh-CN,zh;q=0.9", "en"),  # the portal's ui_locales first
        ("fr-CA en-GB", None, "en"),  # other languages are passed over
        ("zh-Hans", "en", "zh-CN"),
        ("fr", "en-US,en;q=0.9", "en"),  # ui_locales naming neither: Accept-Language
        (None, "fr;q=1, zh;q=0.5, en;q=0.8", "en"),  # by quality
        (None, "en;q=0, zh-TW", "zh-CN"),  # q=0 is "not this one"
        (None, "en_US", "en"),
        (None, "en;q=abc", "zh-CN"),
        (None, "*", "zh-CN"),
        ("", "", "zh-CN"),
    ],
)
def test_which_language_leads(ui_locales: str | None, header: str | None, lead: str) -> None:
    assert lead_language(ui_locales, header) == lead


def test_the_language_inputs_are_bounded() -> None:
    assert from_ui_locales("xx " * 100 + "en") is None  # past the tags read
    assert from_accept_language("fr," * 100 + "en") is None
