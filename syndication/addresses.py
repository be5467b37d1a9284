"""E-mail addresses: checked and put into one form, by one rule, wherever one comes in
(the directory import, ``subscribers add``, the subscription form) and once more,
defensively, before a message is sent to it.

Pure: no DNS, no I/O. The only module that imports email-validator, which does the
syntax (RFC 5321 dot-atom local parts, lengths) and the domain: NFC, then UTS #46
mapping and IDNA 2008, giving both the Unicode form people read and the ASCII form
(``xn--`` labels) that goes on the wire. On top of it:

- nothing that a decoder could take for a line break or a control survives (C0, DEL,
  C1, U+2028/U+2029 are refused, never silently dropped);
- a local part shaped like an RFC 2047 encoded word (``=?utf-8?q?...?=``) is refused:
  RFC 2047 5 forbids encoded words in an address, and a lenient reader (Python's own
  ``email`` parser among them) decodes one anyway, so ``=?utf-8?q?v=0D=0ABcc...?=``
  would show the reader a line break and a ``Bcc:`` of the sender's choosing;
- a local part that is not ASCII needs SMTPUTF8 (RFC 6531) from every server on the
  way. Entry points refuse it (a Vietnamese letter before the @ is almost always a
  name typed by mistake); the sender accepts one already stored and sends it only
  where the server offers SMTPUTF8 (``mail.send``).

Must not: import anything of ours but ``errors``; look anything up.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from email_validator import EmailNotValidError, validate_email

from syndication.errors import AddressError

__all__ = ["ENCODED_WORD", "Address", "AddressError", "Problem", "for_sending", "parse", "show"]

Problem = Literal["syntax", "control", "encoded-word", "smtputf8"]
"""Why an address was refused (``AddressError.problem``): for messages in other words."""

MAX_LENGTH = 254
"""RFC 5321 4.5.3.1.3: a path is at most 256 octets, brackets included."""

# C0 controls (CR and LF among them), DEL, C1 controls (NEL U+0085 among them), and the
# Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# "=?" then, anywhere after it, "?=": what a lenient decoder starts decoding at.
ENCODED_WORD = re.compile(r"=\?.*\?=", re.DOTALL)
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_ASCII = re.compile(rf"{_ATEXT}{{1,64}}(?:\.{_ATEXT}+)*@{_LABEL}(?:\.{_LABEL})+")
"""An ASCII dot-atom at an ASCII host name: safe on the wire as it is (``for_sending``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    """A checked address. ``local`` and ``domain`` are NFC and lower-cased (one
    subscriber per mailbox, however it is typed)."""

    local: str
    domain: str
    """The domain as people read it (Unicode labels)."""
    ascii_domain: str
    """The domain as it goes on the wire (``xn--`` labels for an internationalised one)."""

    @property
    def stored(self) -> str:
        """The form we store and show: ``local@domain`` with the Unicode domain."""
        return f"{self.local}@{self.domain}"

    @property
    def wire(self) -> str:
        """The form for the envelope and the ``To`` header: the ASCII domain."""
        return f"{self.local}@{self.ascii_domain}"

    @property
    def smtputf8(self) -> bool:
        """Whether the local part needs SMTPUTF8 (it is not ASCII)."""
        return not self.local.isascii()


def parse(value: str, *, smtputf8: bool = False) -> Address:
    """``value`` (surrounding spaces ignored) checked and normalised.

    ``smtputf8``: accept a local part that is not ASCII (only the sender does).

    Raises:
        AddressError: the address is unusable; ``reason`` says why, for people.
    """
    text = unicodedata.normalize("NFC", value.strip())
    if len(text) > 4 * MAX_LENGTH:  # not worth parsing (a form field can be kilobytes)
        raise AddressError(text[:MAX_LENGTH] + "…", "syntax", f"it is longer than {MAX_LENGTH} characters")
    if _CONTROL.search(text):
        raise AddressError(text, "control", "it contains a line break or another control character")
    local = text.rpartition("@")[0]
    if ENCODED_WORD.search(local):
        raise AddressError(
            text, "encoded-word", 'the part before the @-sign looks like an encoded word ("=?...?=")'
        )
    try:
        valid = validate_email(
            text,
            check_deliverability=False,
            allow_smtputf8=True,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            strict=True,  # RFC 5321 4.5.3.1.1: a local part of at most 64 characters
        )
    except EmailNotValidError as exc:
        raise AddressError(text, "syntax", str(exc).rstrip(".")) from exc
    address = Address(
        local=valid.local_part.lower(),
        domain=valid.domain.lower(),
        ascii_domain=valid.ascii_domain.lower(),
    )
    if address.smtputf8 and not smtputf8:
        raise AddressError(
            text,
            "smtputf8",
            "the part before the @-sign has letters with diacritics or other non-ASCII characters, "
            "which many mail servers cannot take",
        )
    if len(address.wire.encode("utf-8")) > MAX_LENGTH:
        raise AddressError(text, "syntax", f"it is longer than {MAX_LENGTH} characters on the wire")
    return address


def for_sending(stored: str) -> str:
    """The form of a stored address that goes into the envelope and ``To`` (``wire``),
    checked again: an address stored before a rule existed (or written around the
    entry points) is not trusted. A non-ASCII local part is accepted here; the
    transport sends it only with SMTPUTF8.

    Raises:
        AddressError: the address is unusable.
    """
    # Nearly every address is plain ASCII: the same answer as ``parse`` without its cost.
    if _PLAIN_ASCII.fullmatch(stored) and len(stored) <= MAX_LENGTH and not ENCODED_WORD.search(stored):
        return stored.lower()
    return parse(stored, smtputf8=True).wire


def show(value: str) -> str:
    """``value`` quoted for a message to people, control characters escaped, long ones cut."""
    return json.dumps(value if len(value) <= 80 else value[:79] + "…", ensure_ascii=False)
