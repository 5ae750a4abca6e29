"""Who is in the demo federation: three regions, three citizens, two portals.

One of the citizens, 张三, is registered in 浙江 and in 上海 with the same resident identity
number: whichever region he signs in through, the portals see one national identity
("一次注册，全网通行").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from gateway.identity import check_character
from gateway.registry import RegionKind


@dataclass(frozen=True)
class DemoRegion:
    code: str
    kind: RegionKind
    zh: str
    en: str
    realm_title_zh: str
    realm_title_en: str


REGIONS: Final = (
    DemoRegion(
        "zj", RegionKind.PROVINCE, "浙江", "Zhejiang", "浙江省统一身份认证", "Zhejiang identity"
    ),
    DemoRegion(
        "sh",
        RegionKind.MUNICIPALITY,
        "上海",
        "Shanghai",
        "上海市统一身份认证",
        "Shanghai identity",
    ),
    DemoRegion(
        "mps",
        RegionKind.DEPARTMENT,
        "公安部",
        "Ministry of Public Security",
        "公安部网络身份认证",
        "MPS network identity",
    ),
)


def identity_number(address: str, birth: str, sequence: str) -> str:
    """A well-formed GB 11643-1999 number: address code, birth date, sequence, check character."""
    first17 = address + birth + sequence
    return first17 + check_character(first17)


@dataclass(frozen=True)
class Citizen:
    username: str
    family_name: str
    given_name: str
    identity_number: str = field(repr=False)
    #: E.164, as the realms' user profile requires (``+`` and digits only).
    phone_number: str
    regions: tuple[str, ...]
    story_zh: str
    story_en: str

    @property
    def full_name(self) -> str:
        """The name as it is written in Chinese: family name first, no space."""
        return self.family_name + self.given_name


CITIZENS: Final = (
    Citizen(
        "zhangsan",
        "张",
        "三",
        identity_number("330106", "19900307", "123"),
        "+8613800138000",
        ("zj", "sh"),
        "在浙江登记，后迁居上海：两个地区账号，一个国家身份",
        "registered in Zhejiang, moved to Shanghai: two regional accounts, one national identity",
    ),
    Citizen(
        "lisi",
        "李",
        "四",
        identity_number("310104", "19851120", "456"),
        "+8613900139000",
        ("sh",),
        "上海居民",
        "a Shanghai resident",
    ),
    Citizen(
        "wangwu",
        "王",
        "五",
        identity_number("110102", "19780515", "789"),
        "+8613700137000",
        ("mps",),
        "持有公安部网络身份认证账号",
        "holds an MPS network identity account",
    ),
)


@dataclass(frozen=True)
class DemoPortal:
    client_id: str
    owner: str
    name_zh: str
    name_en: str
    scopes: tuple[str, ...]
    accent: str


PORTALS: Final = (
    DemoPortal(
        "zj-services",
        "zj",
        "浙江政务服务网（演示）",
        "Zhejiang Government Services (demo)",
        ("openid", "profile", "phone"),
        "#0f6e5f",
    ),
    DemoPortal(
        "mps-services",
        "mps",
        "公安部政务服务平台（演示）",
        "Ministry of Public Security Services (demo)",
        ("openid", "profile"),
        "#0b3d6e",
    ),
)
# Pairwise subjects are per sector, the redirect URI's host (OIDC Core §8.1): portal B is reached
# as "localhost" (still 127.0.0.1) so that the two portals are two sectors with two subjects.
PORTAL_HOSTS: Final = ("127.0.0.1", "localhost")
