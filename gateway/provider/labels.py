"""How the pages name the claims a portal may receive: zh-CN first, English second."""

from __future__ import annotations

CLAIM_LABELS = {
    "name": ("姓名", "Name"),
    "phone_number": ("手机号码", "Phone number"),
    "id_number": ("公民身份号码", "Resident identity number"),
    "home_region": ("注册地区", "Home region"),
    "verified_claims": ("经核验的实名信息", "Verified identity information"),
}

__all__ = ["CLAIM_LABELS"]
