"""The one rule for e-mail addresses: what comes in, what is stored, what goes on the wire."""

from __future__ import annotations

import email.policy
from email.headerregistry import HeaderRegistry

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syndication import addresses
from syndication.errors import AddressError, SyndicationError

ENCODED_WORD = "=?utf-8?q?v=0D=0ABcc=3A_evil=40evil.example?=@example.org"


def test_an_internationalised_domain_is_stored_in_unicode_and_sent_in_ascii() -> None:
    found = addresses.parse("  IDN@EXÄMPLE.org ")
    assert found.stored == "idn@exämple.org"
    assert found.wire == "idn@xn--exmple-cua.org"
    assert not found.smtputf8
    # UTS #46 maps what people type (full-width dots, capitals, "ß" kept as IDNA 2008 does).
    assert addresses.parse("a@faß.de").wire == "a@xn--fa-hia.de"
    assert addresses.parse("a@bộ．example．vn").stored == "a@bộ.example.vn"


def test_the_stored_form_is_nfc_whatever_was_typed() -> None:
    decomposed = "a@bo\u0302\u0323.example.vn"  # "bộ" typed as o + circumflex + dot below
    assert addresses.parse(decomposed).stored == "a@bộ.example.vn"


@pytest.mark.parametrize(
    "address",
    [
        ENCODED_WORD,
        "=?utf-8?b?YUBiLmNvbQ==?=@example.org",
        "x=?iso-8859-1?Q?a?=y@example.org",
    ],
)
def test_a_local_part_shaped_like_an_encoded_word_is_refused(address: str) -> None:
    with pytest.raises(AddressError) as caught:
        addresses.parse(address)
    assert caught.value.problem == "encoded-word"
    assert "encoded word" in caught.value.reason
    with pytest.raises(AddressError):
        addresses.for_sending(address)


@pytest.mark.parametrize(
    "address",
    ["a@example.org\r\nBcc: x@evil.example", "a\x00b@example.org", "a\u2028@example.org", "a\x85@x.vn"],
)
def test_control_characters_are_refused_not_dropped(address: str) -> None:
    with pytest.raises(AddressError) as caught:
        addresses.parse(address)
    assert caught.value.problem == "control"
    with pytest.raises(AddressError):
        addresses.for_sending(address)


def test_a_non_ascii_local_part_comes_in_nowhere_but_may_be_sent() -> None:
    with pytest.raises(AddressError) as caught:
        addresses.parse("nguyễn@example.org")
    assert caught.value.problem == "smtputf8"
    found = addresses.parse("Nguyễn@example.org", smtputf8=True)
    assert found.smtputf8
    assert found.wire == "nguyễn@example.org"
    assert addresses.for_sending("nguyễn@example.org") == "nguyễn@example.org"


@pytest.mark.parametrize(
    "address",
    [
        "",
        "no-at-sign",
        "a@localhost",
        "a@b",
        "a b@example.org",
        "a..b@example.org",
        '"quoted"@example.org',
        "a@[127.0.0.1]",
        "Name <a@example.org>",
        "a" * 65 + "@example.org",
        "a@" + "b" * 64 + ".org",
        "a@example.org" + "x" * 2000,
    ],
)
def test_what_is_not_an_address(address: str) -> None:
    with pytest.raises(AddressError) as caught:
        addresses.parse(address)
    assert caught.value.problem == "syntax"
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, SyndicationError)
    assert str(caught.value).startswith('"')


def test_for_sending_gives_the_same_answer_as_parse_for_plain_addresses() -> None:
    for address in ("a@example.org", "bi.thu+ban-tin@chibo-vanphong.example.org", "x_y-z@a.b.vn"):
        assert addresses.for_sending(address) == addresses.parse(address).wire


_ON_THE_WIRE = st.text(
    alphabet=st.sampled_from('aZ09.-_=?+@\r\n \x00\u0085\u2028äễ"<>,:;()[]\\'), min_size=1, max_size=40
)


@given(_ON_THE_WIRE)
def test_whatever_is_accepted_is_one_address_when_read_back(value: str) -> None:
    """Any text either is refused, or gives an address that a To header read back by the
    standard library shows as exactly that one address: no line break, no second recipient."""
    try:
        wire = addresses.for_sending(value)
    except AddressError:
        return
    assert "\r" not in wire
    assert "\n" not in wire
    assert "=?" not in wire.rpartition("@")[0] or "?=" not in wire.rpartition("@")[0]
    header = HeaderRegistry()("To", wire)
    assert [a.addr_spec for a in header.addresses] == [wire]
    assert email.policy.default.header_fetch_parse("To", wire) == wire
