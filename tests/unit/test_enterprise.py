"""Unified social credit codes (GB 32100-2015): the check character against published codes,
and every malformed shape refused; the enterprise key apart from the citizen's."""

from __future__ import annotations

import pytest

from gateway.enterprise import (
    ALPHABET,
    WEIGHTS,
    CreditCodeError,
    check_character,
    enterprise_key,
    parse_credit_code,
)
from gateway.identity import identity_key, parse_identity_number

# Published codes: the worked example of GB 32100-2015 (its appendix computes the check
# character 3 for 91350100M000100Y4 and shows ...Y4Z refused), and real enterprises' codes as
# printed on their business licences and in the national enterprise credit register (Huawei's as
# cited by Wikipedia's infobox; Tencent, Alibaba, Baidu).
PUBLISHED = (
    "91350100M000100Y43",
    "914403001922038216",
    "9144030071526726XG",
    "91330100716105852F",
    "91110000802100433B",
)
SECRET = b"n" * 32


def test_the_alphabet_has_31_symbols_without_i_o_z_s_v() -> None:
    assert len(ALPHABET) == 31
    assert not set("IOZSV") & set(ALPHABET)


def test_the_weights_are_the_standards_table() -> None:
    assert WEIGHTS == (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def test_the_standards_worked_example_sums_to_1640_and_checks_3() -> None:
    assert check_character("91350100M000100Y4") == "3"


@pytest.mark.parametrize("code", PUBLISHED)
def test_published_codes_are_valid(code: str) -> None:
    parsed = parse_credit_code(f" {code} ")
    assert parsed.value == code


def test_the_parts_of_a_code() -> None:
    code = parse_credit_code("914403001922038216")
    assert code.registration_authority == "9"
    assert code.entity_category == "1"
    assert code.division_code == "440300"
    assert code.organisation_code == "192203821"


def test_a_check_value_of_31_is_written_0() -> None:
    # Find a 17-character stem whose sum is a multiple of 31: its check character is "0".
    stem = next(
        f"9144030019220{n:04d}"
        for n in range(10_000)
        if sum(ALPHABET.index(c) * w for c, w in zip(f"9144030019220{n:04d}", WEIGHTS, strict=True))
        % 31
        == 0
    )
    assert check_character(stem) == "0"
    assert parse_credit_code(stem + "0").value == stem + "0"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("91350100M000100Y4Z", "forbidden"),  # the standard's own refused example (Z)
        ("91350100M000100Y44", "check character"),
        ("914403001922038217", "check character"),
        ("9144030071526726XF", "check character"),
        ("91350100M000100Y4", "18 characters"),
        ("91350100M000100Y433", "18 characters"),
        ("", "18 characters"),
        ("91350100m000100y43", "capitals"),
        ("91350100I000100Y43", "forbidden"),
        ("91350100O000100Y43", "forbidden"),
        ("91350100S000100Y43", "forbidden"),
        ("91350100V000100Y43", "forbidden"),
        ("9135A100M000100Y43", "positions 3-8"),
        ("91350100M0001-0Y43", "positions 3-8"),
        ("９１３５０１００Ｍ０００１００Ｙ４３", "positions 3-8"),  # full-width forms
    ],
)
def test_malformed_codes_are_refused(text: str, reason: str) -> None:
    with pytest.raises(CreditCodeError) as refused:
        parse_credit_code(text)
    assert reason in refused.value.reason or (
        reason == "forbidden" and "alphabet" in refused.value.reason
    ), refused.value.reason


def test_every_single_character_change_is_caught() -> None:
    code = "914403001922038216"
    for position in range(18):
        for symbol in ALPHABET:
            if symbol == code[position] or (2 <= position < 8 and not symbol.isdigit()):
                continue
            changed = code[:position] + symbol + code[position + 1 :]
            with pytest.raises(CreditCodeError):
                parse_credit_code(changed)


def test_the_enterprise_key_is_keyed_and_apart_from_the_citizens() -> None:
    code = parse_credit_code("914403001922038216")
    key = enterprise_key(code, SECRET)
    assert key == enterprise_key(parse_credit_code("914403001922038216"), SECRET)
    assert key != enterprise_key(code, b"m" * 32)
    assert code.value not in key
    person = parse_identity_number("11010519491231002X")
    assert key != identity_key(person, SECRET)
    assert len(key) == 64
