"""Display names (R4) and address helpers."""

from __future__ import annotations

import pytest

from chalicelib.relay.addresses import (
    address_hash,
    domain_of,
    idna_domain,
    normalize_address,
    relay_local_part,
)
from chalicelib.relay.names import MAX_NAME_LENGTH, clean_name, display_name


@pytest.mark.parametrize(
    ("first", "last", "organizer", "expected"),
    [
        ("Jane", "Doe", False, "Jane D."),
        ("Jane", "", False, "Jane"),
        ("Jane", None, False, "Jane"),
        ("Jane", "doe", True, "Jane D. (organizer)"),
        ("", "Doe", False, "Participant"),
        ("  ", None, True, "Participant (organizer)"),
        ("José", "Ñúñez", False, "José Ñ."),
        ("Jane", "'O'Brien", False, "Jane O."),
    ],
)
def test_given_a_signup_name_when_displayed_then_first_name_and_initial(
    first: str, last: str | None, organizer: bool, expected: str
) -> None:
    assert display_name(first, last, organizer=organizer) == expected


@pytest.mark.parametrize(
    "hostile",
    [
        "Jane\r\nBcc: victim@example.com",
        "Jane\nBcc: x@y",
        "Jane\x00\tD",
        "Jane\u2028Bcc: x@y",
        "=?utf-8?q?Jane=0D=0ABcc=3A_x=40y?=",
        "=?utf-8?b?SmFuZQ0KQmNjOiB4QHk=?=",
    ],
)
def test_given_a_header_injection_attempt_when_cleaned_then_one_safe_line(hostile: str) -> None:
    cleaned = clean_name(hostile)

    assert "\r" not in cleaned and "\n" not in cleaned and "\x00" not in cleaned
    assert "@" not in cleaned and ":" not in cleaned and "<" not in cleaned
    assert cleaned.startswith("Jane")


def test_given_an_encoded_word_when_cleaned_then_it_is_decoded() -> None:
    assert clean_name("=?utf-8?b?SsO2cmc=?=") == "Jörg"
    assert clean_name("=?iso-8859-1?q?Ren=E9?=") == "René"
    assert clean_name("=?bogus?q?x?=") != ""


def test_given_a_fake_role_tag_or_bidi_override_when_cleaned_then_removed() -> None:
    assert display_name("Eve (organizer)", "X") == "Eve organizer X."
    assert display_name("Olivia", "Organizer", organizer=True) == "Olivia O. (organizer)"
    assert clean_name("Eve\u202eresu") == "Everesu"


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("Eve (organizer)", None),
        ("Eve", "(organizer)"),
        ("Eve\r\n(organizer)", ""),
        ("=?utf-8?q?Eve_=28organizer=29?=", None),
        ("Eve [organizer]", None),
    ],
)
def test_given_a_person_writing_a_role_tag_when_displayed_then_no_tag(first: str, last: str | None) -> None:
    name = display_name(first, last)

    assert "(" not in name and ")" not in name
    assert clean_name(name) == name


@pytest.mark.parametrize(
    ("first", "last"),
    [("Olivia", "Organizer"), ("  ", None), ("A" * 80, "B"), ("José", "Ñúñez"), ("Eve (organizer)", "X")],
)
def test_given_an_organizer_when_displayed_and_cleaned_again_then_one_form_with_the_tag(
    first: str, last: str | None
) -> None:
    name = display_name(first, last, organizer=True)

    assert name.endswith(" (organizer)") and name.count("(") == 1
    assert len(name) <= MAX_NAME_LENGTH
    assert clean_name(name) == name  # From, footers and the kickoff all show this form
    assert clean_name(name + "\u202e") == name


def test_given_a_very_long_name_when_cleaned_then_capped() -> None:
    assert len(clean_name("A" * 500)) == MAX_NAME_LENGTH


def test_given_case_and_space_variants_when_normalized_then_equal() -> None:
    assert normalize_address("  Jane.Doe@Example.ORG ") == "jane.doe@example.org"
    assert normalize_address("<jane@x.org>") == "jane@x.org"


def test_given_an_address_when_hashed_then_stable_keyed_and_case_insensitive() -> None:
    key = b"k" * 32
    h1 = address_hash(key, "Jane@Example.org")

    assert h1 == address_hash(key, " jane@example.ORG")
    assert len(h1) == 32
    assert h1 != address_hash(b"other-key-000000", "jane@example.org")
    assert "jane" not in h1


@pytest.mark.parametrize(
    "variant",
    [
        "jösé@exämple.org",
        "JÖSÉ@EXÄMPLE.ORG",
        "jösé@xn--exmple-cua.org",
        "jösé@XN--EXMPLE-CUA.ORG",
        "j\u006f\u0308s\u0065\u0301@ex\u0061\u0308mple.org",  # decomposed (NFD)
        " <jösé@exämple.org> ",
        "jösé@exämple\u3002org",  # ideographic full stop
    ],
)
def test_given_an_internationalized_address_then_every_spelling_has_one_form_and_hash(variant: str) -> None:
    key = b"k" * 32

    assert normalize_address(variant) == "jösé@xn--exmple-cua.org"
    assert address_hash(key, variant) == address_hash(key, "jösé@exämple.org")


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("Example.ORG", "example.org"),
        ("exämple.org", "xn--exmple-cua.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("straße.de", "xn--strae-oqa.de"),  # IDNA 2008: not folded to strasse.de
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ("exa mple.org", None),
        ("a..b", None),
        ("xn--zz.org", None),  # not valid punycode
        ("", None),
        ("x" * 64 + ".org", None),
    ],
)
def test_given_a_domain_then_its_a_label_form_or_none(domain: str, expected: str | None) -> None:
    assert idna_domain(domain) == expected


def test_given_distinct_domains_then_distinct_hashes() -> None:
    key = b"k" * 32

    assert address_hash(key, "a@straße.de") != address_hash(key, "a@strasse.de")
    assert domain_of("Jane@Exämple.org") == "xn--exmple-cua.org"


def test_given_an_unencodable_domain_then_the_lower_case_nfc_text_is_kept() -> None:
    assert normalize_address("Ann@Exa Mple.ORG") == "ann@exa mple.org"
    assert normalize_address("ann@xn--ZZ.org") == "ann@xn--zz.org"
    assert normalize_address("MAILER-DAEMON") == "mailer-daemon"
    assert normalize_address("<>") == ""


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        ("k3x9@relay.example.org", "k3x9"),
        ("K3X9@Relay.Example.ORG", "k3x9"),
        ("k3x9+reply@relay.example.org", "k3x9"),
        ("<k3x9@relay.example.org>", "k3x9"),
        ("k3x9@other.example.org", None),
        ("k3x9@sub.relay.example.org", None),
        ("+x@relay.example.org", None),
        ("not-an-address", None),
    ],
)
def test_given_a_recipient_when_matched_to_the_relay_domain_then_local_part(
    recipient: str, expected: str | None
) -> None:
    assert relay_local_part(recipient, "relay.example.org") == expected
