"""Build one digest message as the exact bytes to send, and optionally DKIM-sign it.

Pure: no I/O, no clock (the ``Date`` is an input; only dkimpy stamps ``t=`` itself).

The MIME is assembled here directly rather than with ``email.message.EmailMessage``:
the standard library's build and flatten costs about 4 ms per message against about
0.2 ms for the same structure written out, and a digest goes to thousands of
subscribers. ``tests/test_mail_message.py`` checks that what we write parses like the
standard library's message from the same inputs (headers, parts, decoded bodies).

Every header value passes through ``clean_header`` before it is encoded, and the
encoders below never emit CR or LF except as folding: Python 3.11.7 still has
CVE-2024-6923 (an encoded word can smuggle a newline into a header), so nothing here
relies on the ``email`` package to keep headers apart.

What we write, in short:

- ``multipart/alternative`` with a ``text/plain`` then a ``text/html`` part (never
  ``multipart/digest``: mail clients show its parts as attachments), both UTF-8,
  quoted-printable or base64 (the shorter), CRLF line endings, no body line over 76
  nor starting with "." (``body``; a digest's bodies come encoded once per content
  with only the personal values encoded per message, ``body.BodyTemplate``);
- header values that need it as RFC 2047 encoded words (``B`` for non-ASCII text,
  ``Q`` when an ASCII value must be encoded), folded at 78 characters;
- the list headers bulk senders need (RFC 2369, 2919, 8058).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

import dkim
import dkim.crypto

from syndication.addresses import ENCODED_WORD
from syndication.mail.body import EncodedBody, encode

LINE_LIMIT = 78
"""RFC 5322 2.1.1: lines SHOULD be at most 78 characters (998 is the hard limit)."""

# Every C0 control (CR, LF, TAB and the rest), DEL, every C1 control (NEL U+0085
# among them) and the Unicode line and paragraph separators: each becomes a space
# and is then collapsed with the other whitespace.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_ATOM = re.compile(rf"{_ATEXT}+")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_ADDRESS = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*@{_LABEL}(?:\.{_LABEL})+")
# RFC 6532 3.2: a local part may also hold UTF-8 (for a server that offers SMTPUTF8);
# the domain is always its ASCII (A-label) form.
_UTEXT = rf"(?:{_ATEXT}|[^\x00-\x7f])"
_UTF8_ADDRESS = re.compile(rf"{_UTEXT}+(?:\.{_UTEXT}+)*@{_LABEL}(?:\.{_LABEL})+")
_MESSAGE_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")
_LIST_ID = re.compile(r"(.*?)\s*<([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)>")
_URL = re.compile(r"[!-~]+")
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,39}")
_PRINTABLE_ASCII = re.compile(r"[ -~]*")

# Characters a Q-encoded word may carry as themselves inside a phrase (RFC 2047 5(3));
# the same restricted set is used in unstructured headers, where it is also safe.
_Q_LITERAL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_BYTE = tuple(chr(b) if b in _Q_LITERAL else "_" if b == 0x20 else f"={b:02X}" for b in range(256))
_EW_MAX = 75
"""RFC 2047 2: an encoded word is at most 75 characters."""
_EW_OVERHEAD = len("=?utf-8?b?") + len("?=")
_DISPLAY_NAME_EW_MAX = 900
"""See ``_phrase``: a display name's encoded word may pass 75 characters, up to this."""
_MAX_PLAIN_WORD = 66
"""A longer unencoded word could not share its line with a header name; it is encoded."""

_OURS = frozenset(
    name.lower()
    for name in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Date",
        "Message-ID",
        "Reply-To",
        "Sender",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "Precedence",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "DKIM-Signature",
        "Return-Path",
        "Received",
    )
)
"""Header names ``OutgoingMessage.headers`` may not use: we write them, or relays do."""

DKIM_SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
)
"""Signed once per occurrence and once more ("oversigned"), so that a header added on
the way, a second ``List-Unsubscribe`` or ``From`` say, breaks the signature instead of
riding on it. ``Reply-To`` is oversigned even when absent, for the same reason."""


def clean_header(value: str) -> str:
    """One line of NFC text, safe to put in any header: no control characters, no
    line or paragraph separators, whitespace runs collapsed to one space, no spaces
    at either end. Lone surrogates (which cannot be encoded) become U+FFFD."""
    value = _SURROGATE.sub("\ufffd", value)
    value = unicodedata.normalize("NFC", value)
    value = _CONTROL.sub(" ", value)
    return " ".join(value.split())


def message_id(issue_id: int, subscriber_key: str, domain: str) -> str:
    """The Message-ID of one delivery: the same (issue, subscriber) always gives the
    same id, so a message re-sent after a crash is recognisably the same message.

    Raises:
        ValueError: ``domain`` is not an ASCII host name or ``issue_id`` is negative.
    """
    if issue_id < 0:
        raise ValueError(f"issue id must not be negative: {issue_id}")
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"not an ASCII host name: {domain!r}")
    digest = hashlib.sha256(subscriber_key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"<digest-{issue_id}-{digest}@{domain}>"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutgoingMessage:
    """Everything one message says. Text values are cleaned and encoded by ``build``;
    addresses, ids and URLs are checked there and must be ASCII, except the local part
    of ``to_address`` (UTF-8 for a recipient that needs SMTPUTF8). Domains are in their
    ASCII form (``addresses.Address.wire``)."""

    from_address: str
    from_name: str
    to_address: str
    to_name: str
    subject: str
    message_id: str
    """``<...@...>``, e.g. from ``message_id()``."""
    date: datetime
    """Timezone-aware."""
    list_id: str
    """``Phrase <list.id.example>``, e.g. ``Bản tin hằng ngày <daily.portal.example.vn>``."""
    unsubscribe_url: str
    """The personal one-click (RFC 8058) unsubscribe link: ``https://...``."""
    unsubscribe_mailto: str | None
    """``mailto:...`` for clients that only unsubscribe by mail, or None."""
    html: str | EncodedBody
    text: str | EncodedBody
    """Each a text, or a body already encoded (``body.BodyTemplate.fill``)."""
    reply_to: str | None = None
    """An address, when replies should not go to ``from_address``."""
    headers: tuple[tuple[str, str], ...] = ()
    """Further (name, value) headers, e.g. ``("Feedback-ID", ...)``; values are unstructured text."""


class BuiltMessage(bytes):
    """Bytes as ``build`` writes them: 7-bit (but for a ``To`` address that needs
    SMTPUTF8, written in UTF-8 as RFC 6532 allows), CRLF line endings only, ending with
    CRLF, and no line that starts with "." (quoted-printable writes it ``=2E``).

    SMTP can send them after DATA as they are, without normalising line endings or
    doubling dots (``send.data_payload``); bytes of any other type are checked and
    rewritten there. Like ``markupsafe.Markup`` for HTML, the type is the promise:
    only ``build`` and ``DkimSigner.sign`` make one.
    """

    __slots__ = ()


def build(msg: OutgoingMessage) -> BuiltMessage:
    """The message as the bytes to hand to a transport: CRLF line endings, 7-bit (but
    for a UTF-8 ``To`` local part), no line starting with "." (see ``BuiltMessage``).

    Raises:
        ValueError: an address, the Message-ID, the List-Id, an unsubscribe URL, an
            extra header name or the date is unusable.
    """
    for address in (msg.from_address, msg.reply_to):
        if address is not None:
            _check_address(address)
    _check_address(msg.to_address, utf8=True)
    if not _MESSAGE_ID.fullmatch(msg.message_id):
        raise ValueError(f"not a Message-ID: {msg.message_id!r}")
    if msg.date.tzinfo is None or msg.date.utcoffset() is None:
        raise ValueError("the Date must be timezone-aware")
    boundary = "=_" + hashlib.sha256(msg.message_id.encode("ascii")).hexdigest()[:32]

    lines = [
        _address_header("From", msg.from_name, msg.from_address),
        _address_header("To", msg.to_name, msg.to_address),
        _unstructured_header("Subject", msg.subject),
        f"Date: {format_datetime(msg.date)}",
        f"Message-ID: {msg.message_id}",
    ]
    if msg.reply_to is not None:
        lines.append(f"Reply-To: {msg.reply_to}")
    lines += [
        _list_id_header(msg.list_id),
        _list_unsubscribe_header(msg.unsubscribe_url, msg.unsubscribe_mailto),
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        # What bulk senders are asked for (Gmail's and Yahoo's sender requirements,
        # M3AAWG's practices) is one-click List-Unsubscribe and a List-Id, above. None
        # asks for Auto-Submitted, which RFC 3834 made for automatic replies and
        # notifications rather than mail people subscribed to. "Precedence: bulk" is
        # not a standard (RFC 2076 discourages it), but it is what out-of-office
        # responders have long checked to stay quiet, so a few hundred subscribers on
        # holiday do not all answer the digest; we know of no filter that scores it.
        "Precedence: bulk",
    ]
    for name, value in msg.headers:
        if not _HEADER_NAME.fullmatch(name) or name.lower() in _OURS:
            raise ValueError(f"not a header name we can add: {name!r}")
        lines.append(_unstructured_header(name, value))
    lines += [
        "MIME-Version: 1.0",
        "Content-Type: multipart/alternative;",
        f' boundary="{boundary}"',
        "",
        "",
    ]
    # Each encoded body ends with its own CRLF; the CRLF before a delimiter belongs
    # to the delimiter (RFC 2046 5.1.1), hence the extra one.
    return BuiltMessage(
        b"".join(
            (
                # UTF-8 only for a local part that needs it (RFC 6532; sent with SMTPUTF8).
                "\r\n".join(lines).encode("ascii" if msg.to_address.isascii() else "utf-8"),
                *_part(boundary, "text/plain", msg.text),
                b"\r\n",
                *_part(boundary, "text/html", msg.html),
                f"\r\n--{boundary}--\r\n".encode("ascii"),
            )
        )
    )


class DkimSigner:
    """Adds a DKIM-Signature (rsa-sha256, relaxed/relaxed) to built messages.

    Raises:
        ValueError: the selector or domain is not a host name, or the key is not
            an RSA private key in PEM (PKCS#1 or PKCS#8).
    """

    def __init__(self, selector: str, domain: str, private_key_pem: bytes) -> None:
        if not _DOMAIN.fullmatch(selector) or not _DOMAIN.fullmatch(domain):
            raise ValueError(f"not a DKIM selector and domain: {selector!r}, {domain!r}")
        # dkimpy finds the PEM body by "--\n", so CRLF files would not parse.
        key = private_key_pem.replace(b"\r\n", b"\n")
        try:
            dkim.crypto.parse_pem_private_key(key)
        except dkim.crypto.UnparsableKeyError as exc:
            raise ValueError(f"not an RSA private key in PEM: {exc}") from exc
        self.selector = selector
        self.domain = domain
        self._key = key

    def __repr__(self) -> str:
        return f"DkimSigner(selector={self.selector!r}, domain={self.domain!r})"

    def sign(self, message: bytes) -> bytes:
        """``message`` with a DKIM-Signature header prepended (a ``BuiltMessage`` when
        ``message`` is one: the header is folded with CRLF and white space)."""
        present = _header_names(message)
        include: list[bytes] = []
        for name in DKIM_SIGNED_HEADERS:
            lowered = name.lower().encode("ascii")
            include += [lowered] * (present.count(lowered) + 1)
        signature: bytes = dkim.sign(
            message,
            self.selector.encode("ascii"),
            self.domain.encode("ascii"),
            self._key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=include,
            linesep=b"\r\n",
        )
        signed = signature + message
        if isinstance(message, BuiltMessage) and _is_crlf_text(signature):
            return BuiltMessage(signed)
        return signed


# --- header encoding ---------------------------------------------------------------
# The From, Subject and List-Id of a digest are the same in every message of an issue:
# the (pure) header encoders keep their latest results.


def _check_address(address: str, *, utf8: bool = False) -> None:
    """An address we can write as it is: a dot-atom at an ASCII host name, with UTF-8 in
    the local part only where ``utf8``, and nothing a reader could take for an encoded
    word (``addresses.ENCODED_WORD``: RFC 2047 5 forbids them in addresses, and lenient
    readers decode them anyway)."""
    pattern = _UTF8_ADDRESS if utf8 else _ADDRESS
    if (
        not pattern.fullmatch(address)
        or not address.isprintable()
        or len(address.encode("utf-8")) > 254
        or ENCODED_WORD.search(address.rpartition("@")[0])
    ):
        kind = (
            "an e-mail address (a dot-atom, ASCII but for the local part)"
            if utf8
            else "an ASCII e-mail address"
        )
        raise ValueError(f"not {kind}: {address!r}")


def _fold(name: str, tokens: Sequence[str]) -> str:
    """``Name: tokens`` with the tokens separated by one space, or by CRLF and a space
    where the line would pass ``LINE_LIMIT``. Unfolding gives back single spaces."""
    lines: list[str] = []
    line = f"{name}:"
    for index, token in enumerate(tokens):
        if index and len(line) + 1 + len(token) > LINE_LIMIT:
            lines.append(line)
            line = ""
        line += " " + token
    lines.append(line)
    return "\r\n".join(lines)


def _encoded_words(text: str, first_room: int, longest: int = _EW_MAX) -> list[str]:
    """``text`` as RFC 2047 encoded words of whole characters: the first at most
    ``first_room`` characters long (what is left of its line), the others at most
    ``longest``. ``Q`` for ASCII text (readable, and spam filters frown on base64
    that hides plain ASCII), ``B`` for the rest (shorter for Vietnamese)."""
    first = min(longest, max(first_room, 24))
    if text.isascii():
        return _q_words(text, first, longest)
    return _b_words(text, first, longest)


def _b_words(text: str, room: int, longest: int) -> list[str]:
    if _EW_OVERHEAD + 4 * -(-len(text.encode("utf-8")) // 3) <= room:
        return [_b_word(text)]  # what the loop below gives when all of it fits
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in text:
        n = len(char.encode("utf-8"))
        if chunk and _EW_OVERHEAD + 4 * -(-(size + n) // 3) > room:
            words.append(_b_word("".join(chunk)))
            chunk, size, room = [], 0, longest
        chunk.append(char)
        size += n
    if chunk:
        words.append(_b_word("".join(chunk)))
    return words


def _b_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def _q_words(text: str, room: int, longest: int) -> list[str]:
    words: list[str] = []
    chunk = ""
    for byte in text.encode("ascii"):
        piece = _Q_BYTE[byte]
        if chunk and _EW_OVERHEAD + len(chunk) + len(piece) > room:
            words.append(f"=?utf-8?q?{chunk}?=")
            chunk, room = "", longest
        chunk += piece
    if chunk:
        words.append(f"=?utf-8?q?{chunk}?=")
    return words


def _is_plain(word: str) -> bool:
    """Printable ASCII a decoder cannot take for an encoded word, short enough to fold."""
    return len(word) <= _MAX_PLAIN_WORD and _PRINTABLE_ASCII.fullmatch(word) is not None and "=?" not in word


@functools.lru_cache(maxsize=256)
def _unstructured_header(name: str, value: str) -> str:
    value = clean_header(value)
    words = value.split(" ")
    if not all(_is_plain(word) for word in words):
        # All or nothing: mixing plain and encoded words is legal, but every
        # boundary between them is a place for decoders to disagree about spaces.
        words = _encoded_words(value, LINE_LIMIT - len(name) - 2)
    return _fold(name, words)


def _phrase(value: str, room: int, *, quote: bool) -> list[str]:
    """A display name (``quote=True``) or a List-Id description (RFC 5322 ``phrase``)
    as header tokens: atoms as they are; a name of other printable ASCII as one quoted
    string when it fits; else each run of words that are not atoms as encoded words.

    Decoders disagree on one thing that matters here. RFC 2047 6.2 says the space
    between two adjacent encoded words is not part of the text, and mail clients
    follow it; Python's parser (``policy.default``) keeps it inside display names,
    and its generator writes names for that reading. So a display name never has
    two adjacent encoded words: a run that does not fit in one 75-character encoded
    word becomes one longer encoded word (lines stay far below 998), which every
    decoder reads the same way. Only a run too long even for that (a "name" of
    hundreds of characters) is split, the RFC way. A List-Id is read as unstructured
    text, where Python follows the RFC, so its runs are split normally.
    """
    words = value.split(" ")
    atoms = [_is_plain(word) and _ATOM.fullmatch(word) is not None for word in words]
    if all(atoms):
        return words
    if quote and all(_is_plain(word) for word in words):
        quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if len(quoted) <= room:
            return [quoted]
    longest = _DISPLAY_NAME_EW_MAX if quote else _EW_MAX
    tokens: list[str] = []
    run: list[str] = []
    for word, atom in zip([*words, ""], [*atoms, True], strict=True):
        if not atom:
            run.append(word)
            continue
        if run:
            first_room = longest if quote or tokens else room
            tokens += _encoded_words(" ".join(run), first_room, longest)
            run = []
        if word:
            tokens.append(word)
    return tokens


@functools.lru_cache(maxsize=256)
def _address_header(name: str, display_name: str, address: str) -> str:
    display_name = clean_header(display_name)
    if not display_name:
        return f"{name}: {address}"
    tokens = _phrase(display_name, LINE_LIMIT - len(name) - 2, quote=True)
    return _fold(name, [*tokens, f"<{address}>"])


@functools.lru_cache(maxsize=256)
def _list_id_header(list_id: str) -> str:
    match = _LIST_ID.fullmatch(clean_header(list_id))
    if match is None:
        raise ValueError(f"not a List-Id (description <list.id>): {list_id!r}")
    description, identifier = match.groups()
    # Quoted strings are legal here, but readers show List-Id unstructured, quotes
    # and all: anything beyond atoms is encoded instead.
    tokens = _phrase(description, LINE_LIMIT - len("List-Id: "), quote=False) if description else []
    return _fold("List-Id", [*tokens, f"<{identifier}>"])


def _list_unsubscribe_header(url: str, mailto: str | None) -> str:
    _check_uri(url, "https://")
    tokens = [f"<{url}>"]
    if mailto is not None:
        _check_uri(mailto, "mailto:")
        tokens = [f"<{url}>,", f"<{mailto}>"]
    return _fold("List-Unsubscribe", tokens)


def _check_uri(uri: str, scheme: str) -> None:
    # RFC 2369: angle brackets delimit the URIs and commas separate them, so neither
    # may appear unencoded inside one; a URI longer than 900 would break the 998 limit.
    if (
        not uri.lower().startswith(scheme)
        or not _URL.fullmatch(uri)
        or any(c in uri for c in "<>,")
        or len(uri) > 900
    ):
        raise ValueError(f"not a usable {scheme} URI for List-Unsubscribe: {uri!r}")


# --- bodies and parsing --------------------------------------------------------------


def _part(boundary: str, content_type: str, body: str | EncodedBody) -> tuple[bytes, bytes]:
    """One body part: its delimiter and headers, and its encoded body (ending with CRLF).

    A text is encoded here (``body.encode``: a final line break, the shorter of
    quoted-printable and base64); an ``EncodedBody`` (from ``BodyTemplate.fill``) is
    used as it is.
    """
    encoded = body if isinstance(body, EncodedBody) else encode(body)
    head = (
        f'--{boundary}\r\nContent-Type: {content_type}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoded.encoding}\r\n\r\n"
    )
    return head.encode("ascii"), encoded.data


def _is_crlf_text(data: bytes) -> bool:
    """CRLF line endings only, ending with one, and no line that starts with "."."""
    crlf = data.count(b"\r\n")
    return (
        data.endswith(b"\r\n")
        and data.count(b"\r") == crlf
        and data.count(b"\n") == crlf
        and not data.startswith(b".")
        and b"\r\n." not in data
    )


def _header_names(message: bytes) -> list[bytes]:
    """Lower-cased names of the header fields of ``message``, in order."""
    end = message.find(b"\r\n\r\n")
    head = message if end < 0 else message[:end]
    return [
        line.split(b":", 1)[0].strip().lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    ]
