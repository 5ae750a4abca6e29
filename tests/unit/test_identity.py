"""GB 11643-1999 identity numbers, the keyed hash and pairwise subjects."""

from __future__ import annotations

import datetime

import pytest

from gateway.identity import (
    IdentityNumberError,
    check_character,
    identity_key,
    pairwise_subject,
    parse_identity_number,
)

SAMPLE = "11010519491231002X"  # the worked example of GB 11643-1999 (with a 1949 birth date)
TODAY = datetime.date(2026, 11, 22)


def test_the_standards_sample_is_valid_and_parsed() -> None:
    number = parse_identity_number(SAMPLE, today=TODAY)
    assert number.value == SAMPLE
    assert number.address_code == "110105"
    assert number.birth_date == datetime.date(1949, 12, 31)


def test_a_lower_case_x_is_normalised() -> None:
    assert parse_identity_number(SAMPLE.lower(), today=TODAY).value == SAMPLE


def test_the_check_character_follows_iso_7064_mod_11_2() -> None:
    assert check_character("11010519491231002") == "X"
    assert check_character("44052419800101001") == "3"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("11010519491231002", "18 characters"),
        ("11010519491231002XX", "18 characters"),
        ("1101051949123100AX", "17 digits"),
        ("110105194912310021", "check character"),
        ("010105194912310021", "address code"),
        ("110105194902300020", "real date"),
        ("110105203001010020", "out of range"),
        ("110105189912310020", "out of range"),
    ],
)
def test_malformed_numbers_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(IdentityNumberError, match=reason):
        parse_identity_number(text, today=TODAY)


def test_the_number_never_shows_in_its_repr() -> None:
    assert SAMPLE not in repr(parse_identity_number(SAMPLE, today=TODAY))


def test_identity_key_is_keyed_and_stable() -> None:
    number = parse_identity_number(SAMPLE, today=TODAY)
    assert identity_key(number, b"secret-a") == identity_key(number, b"secret-a")
    assert identity_key(number, b"secret-a") != identity_key(number, b"secret-b")
    assert SAMPLE not in identity_key(number, b"secret-a")


def test_pairwise_subjects_differ_per_sector_and_are_stable() -> None:
    a = pairwise_subject("subject-1", "portal-a.example.cn", b"pairwise")
    assert a == pairwise_subject("subject-1", "portal-a.example.cn", b"pairwise")
    assert a != pairwise_subject("subject-1", "portal-b.example.cn", b"pairwise")
    assert a != pairwise_subject("subject-2", "portal-a.example.cn", b"pairwise")
    assert len(a) == 43  # base64url of 32 bytes, unpadded
