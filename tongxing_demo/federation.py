"""Who is in the demo federation: four regions, five people, four portals, a proofing provider.

One of the citizens, 张三, is registered in 浙江 and in 上海 with the same resident identity
number: whichever region he signs in through, the portals see one national identity
("一次注册，全网通行").

The fourth region is the electronic business licence system (电子营业执照, a region of kind
``enterprise``): it asserts the demo enterprise (its GB 32100-2015 unified social credit code,
name and type) and the person signing in for it. 陈静 is the enterprise's legal
representative (法定代表人) there; 赵六, a citizen of 浙江, is the agent (经办人) she can give a
mandate to, who then acts for the enterprise at the enterprise portal (issue 16).

The proofing provider (the Ministry of Public Security's real-name check, played by a Keycloak
realm) vouches for each person's name and date of birth as ``verified_claims`` (OpenID Connect
for Identity Assurance 1.0): the loa3 portal sends a citizen there once their session has two
factors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from gateway.enterprise import check_character as credit_check_character
from gateway.identity import check_character
from gateway.registry import Level, RegionKind


@dataclass(frozen=True)
class DemoRegion:
    code: str
    kind: RegionKind
    zh: str
    en: str
    realm_title_zh: str
    realm_title_en: str
    #: What a sign-in with the realm's password flow is worth to the gateway (its acr mapping).
    sign_in_level: Level = "loa1"


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
        # It plays the MPS network identity app (网号/网证), whose sign-in is two factors (the
        # phone that holds the credential and the person's PIN or face): the demo's way to a
        # session at loa2 without enrolling an authenticator, which the loa3 portal needs.
        sign_in_level="loa2",
    ),
    DemoRegion(
        "ebl",
        RegionKind.ENTERPRISE,
        "电子营业执照",
        "E-business licence",
        "电子营业执照系统",
        "Electronic business licence",
    ),
)
#: The electronic business licence system: the region of kind ``enterprise``.
ENTERPRISE_REGION: Final = "ebl"


def credit_code(first17: str) -> str:
    """A well-formed GB 32100-2015 unified social credit code: the first 17 characters and the
    check character of the standard (§4.3)."""
    return first17 + credit_check_character(first17)


@dataclass(frozen=True)
class DemoEnterprise:
    """The enterprise the e-business-licence system asserts (as its users' attributes)."""

    credit_code: str
    name: str
    name_en: str
    type: str


#: 9 market regulation, 1 enterprise, 330106 Hangzhou Xihu district, an organisation code, and
#: the check character: a code of the right form that names no real company.
ENTERPRISE: Final = DemoEnterprise(
    credit_code("91330106MA2CD7X1Q"),
    "杭州通行示范科技有限公司",
    "Hangzhou Tongxing Demo Technology Co., Ltd.",
    "有限责任公司",
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
    #: Their role in :data:`ENTERPRISE` at the e-business-licence system (an account there).
    enterprise_role: str | None = None

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
    Citizen(
        "chenjing",
        "陈",
        "静",
        identity_number("330102", "19750318", "246"),
        "+8613600136000",
        (ENTERPRISE_REGION,),
        "杭州通行示范科技有限公司的法定代表人，在电子营业执照系统登录",
        "legal representative of the demo enterprise, signs in at the e-business licence system",
        enterprise_role="legal_representative",
    ),
    Citizen(
        "zhaoliu",
        "赵",
        "六",
        identity_number("330106", "19880612", "135"),
        "+8613500135000",
        ("zj",),
        "浙江居民，企业的经办人：持法定代表人授予的委托为企业办事",
        "a Zhejiang citizen, the enterprise's agent: acts for it with the mandate she grants him",
    ),
)
#: Who is who in the enterprise story.
REPRESENTATIVE: Final = CITIZENS[3]
AGENT: Final = CITIZENS[4]


@dataclass(frozen=True)
class DemoPortal:
    client_id: str
    owner: str
    name_zh: str
    name_en: str
    scopes: tuple[str, ...]
    accent: str
    #: Whom the portal serves: people, enterprises (a person acting for one) or both.
    subject_kinds: Literal["people", "enterprises", "both"] = "people"
    minimum_level: Level = "loa1"
    sector: str = "general"
    #: The ``claims`` request parameter it sends (OIDC Core §5.5), as JSON, if any.
    claims: str | None = None


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
    DemoPortal(
        "zj-business",
        "zj",
        "浙江企业服务（演示）",
        "Zhejiang Business Services (demo)",
        ("openid", "profile", "enterprise"),
        "#8a4b08",
        subject_kinds="both",
        sector="market-regulation",
    ),
    DemoPortal(
        "tax-services",
        "mps",
        "个人所得税（演示，需实名核验）",
        "Individual Income Tax (demo, verified real name)",
        ("openid", "profile"),
        "#7a1f2b",
        minimum_level="loa3",
        sector="tax",
        claims=json.dumps(
            {
                "id_token": {
                    "verified_claims": {
                        "verification": {"trust_framework": None, "time": None},
                        "claims": {"name": None, "birthdate": None},
                    }
                }
            }
        ),
    ),
)
#: The enterprise portal and the loa3 portal.
ENTERPRISE_PORTAL: Final = PORTALS[2]
PROOFED_PORTAL: Final = PORTALS[3]
# Pairwise subjects are per sector, the redirect URI's host (OIDC Core §8.1): portal B is reached
# as "localhost" (still 127.0.0.1) so that portals A and B are two sectors with two subjects.
# Loopback has no third name a browser and the gateway's redirect-URI rule both take, so the
# enterprise portal shares portal A's sector and the tax portal portal B's.
PORTAL_HOSTS: Final = ("127.0.0.1", "localhost", "127.0.0.1", "localhost")

# --- the proofing provider ---------------------------------------------------------------------

#: The trust framework the demo's proofing provider vouches under (IDA §5.1.1: a name of the
#: platform's choosing; MPS's CTID "cyber trusted identity" real-name check).
TRUST_FRAMEWORK: Final = "cn_mps_ctid"
PROOFING_ID: Final = "mps-ctid"
#: The provider's Keycloak realm is made like a department's (``realms/department.json.j2``); its
#: code names the realm (``<prefix>proof``), it is no region of the gateway.
PROOFING: Final = DemoRegion(
    "proof",
    RegionKind.DEPARTMENT,
    "公安部实名核验",
    "MPS real-name check",
    "公安部实名核验",
    "MPS real-name check",
)
#: What the platform lets it vouch for (TONGXING_PROOFING_PROVIDERS: claims, evidence).
PROOFED_CLAIMS: Final = ("name", "birthdate")


def verified_claims(citizen: Citizen, proofed_at: str) -> dict[str, Any]:
    """What the proofing provider asserts of ``citizen`` (IDA §5: verification and claims); the
    date of birth is the one in the resident identity number (GB 11643-1999: digits 7-14)."""
    born = citizen.identity_number[6:14]
    return {
        "verification": {
            "trust_framework": TRUST_FRAMEWORK,
            "assurance_level": "high",
            "time": proofed_at,
            "evidence": [{"type": "document", "document_details": {"type": "idcard"}}],
        },
        "claims": {
            "name": citizen.full_name,
            "birthdate": f"{born[:4]}-{born[4:6]}-{born[6:]}",
        },
    }
