"""The platform's trust mark types (``TONGXING_FEDERATION_TRUST_MARK_TYPES``) checked when loaded
(gateway.federation.trust_marks, OpenID Federation 1.0 §7.1): a bad one fails start-up."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gateway.federation.trust_marks import check_trust_mark_types

NATIONAL = "https://tongxing.gov.cn/trust-marks/registered-national-portal"


def test_types_with_their_options_are_loaded() -> None:
    loaded = check_trust_mark_types(
        {NATIONAL: {"ref": "https://tongxing.gov.cn/tm.html", "lifetime": 86400}}
    )
    assert loaded[NATIONAL].ref == "https://tongxing.gov.cn/tm.html"
    assert loaded[NATIONAL].lifetime == timedelta(days=1)
    assert loaded[NATIONAL].logo_uri is None


@pytest.mark.parametrize(
    ("types", "reason"),
    [
        ({"http://tongxing.gov.cn/tm": {}}, "https URL"),
        ({f"{NATIONAL}#x": {}}, "https URL"),
        ({NATIONAL: []}, "must be an object"),
        ({NATIONAL: {"colour": "red"}}, "unknown options"),
        ({NATIONAL: {"lifetime": 10}}, "out of range"),
        ({NATIONAL: {"lifetime": True}}, "seconds"),
        ({NATIONAL: {"ref": "ftp://x"}}, "ref must be"),
        ({NATIONAL: {"logo_uri": "http://x/logo.svg"}}, "logo_uri must be"),
    ],
)
def test_a_bad_type_is_refused_with_the_reason(types: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_trust_mark_types(types)
