"""Encode the text of a body part (quoted-printable or base64), once per message or,
for a body shared by many messages, once per body with only the personal values
encoded per message.

Pure: no I/O.

``encode(text)`` encodes one text: CRLF line endings, a final line break, and the
shorter of quoted-printable and base64, lines within 76 characters. No encoded line
starts with "." (quoted-printable writes it ``=2E`` there), so SMTP has no dots to
double in a message built from these bodies.

``BodyTemplate(parts)`` is a text with holes (a digest with markers for the name and
links): ``parts`` alternate shared text and hole names, as ``re.split`` with one
group gives them. The shared text is encoded when the template is made; ``fill``
encodes only the values and joins the pieces. Both encodings can be cut between
pieces without changing what they decode to:

- quoted-printable: each piece ends with a line break, a soft one (``=`` CRLF) when
  the text goes on, so the next piece starts on a line of its own;
- base64: each piece encodes a whole number of 3-byte groups, every line a whole
  number of 4-character quanta; the up to two bytes left at the end of a shared
  piece are carried into the next value's line, and since the values' lengths
  are only known when filling, each shared piece is encoded for each of the three
  offsets it can start at.

Decoders then read the same bytes as from the whole personalised text encoded in
one go (``tests/test_mail_body.py`` checks it for any text and values).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["BodyTemplate", "EncodedBody", "encode"]

Encoding = Literal["quoted-printable", "base64"]

_LINE: Final = 76
"""RFC 2045: encoded lines are at most 76 characters."""
_BASE64_LINE_BYTES: Final = _LINE // 4 * 3
_HIGH_BYTES: Final = bytes(range(128, 256))


@dataclass(frozen=True, slots=True)
class EncodedBody:
    """A body ready for a MIME part: its transfer encoding and the encoded bytes
    (7-bit, CRLF line endings, each line within 76 characters and not starting with
    ".", ending with CRLF)."""

    encoding: Encoding
    data: bytes


def encode(text: str) -> EncodedBody:
    """``text`` with CRLF line endings and a final line break, in the shorter encoding.

    Quoted-printable keeps markup and mostly-ASCII text readable; base64 is a fifth
    smaller for text dense with Vietnamese letters (each is two or three bytes in
    UTF-8, six or nine characters in quoted-printable). The standard library chooses
    the same way.
    """
    data = _crlf(text)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if _quoted_printable_first(data):
        encoded = _quoted_printable(data)
        if len(encoded) <= _base64_length(len(data)):
            return EncodedBody("quoted-printable", encoded)
    return EncodedBody("base64", _base64_lines(data))


class BodyTemplate:
    """A text with holes whose shared parts are encoded once; ``fill`` makes each body.

    ``parts`` is text, hole name, text, ..., text (an odd number of items). Values
    must be one line each (no CR or LF); they are encoded as they are. The encoding
    is chosen for the shared text, as ``encode`` chooses for a whole text.

    An empty value could join a CR before it with an LF after it into one line
    break, or leave the text ending with one; a body with one is encoded whole.

    Raises:
        ValueError: an even number of parts.
    """

    __slots__ = ("_base64_pieces", "_carry", "_first", "_names", "_parts", "_qp_pieces", "encoding")

    def __init__(self, parts: Sequence[str]) -> None:
        if len(parts) % 2 != 1:
            raise ValueError("parts must be text, name, text, ..., text")
        self._parts = tuple(parts)
        texts = [_crlf(text) for text in parts[::2]]
        if not texts[-1].endswith(b"\r\n"):
            texts[-1] += b"\r\n"
        self._names: tuple[str, ...] = tuple(parts[1::2])
        shared = b"".join(texts)
        self.encoding: Encoding = "base64"
        if _quoted_printable_first(shared) and len(_quoted_printable(shared)) <= _base64_length(len(shared)):
            self.encoding = "quoted-printable"
        self._qp_pieces: tuple[bytes, ...] = ()
        self._base64_pieces: tuple[tuple[tuple[bytes, bytes, bytes], ...], ...] = ()
        self._carry = b""
        if self.encoding == "quoted-printable":
            self._first = _qp_piece(texts[0])
            self._qp_pieces = tuple(_qp_piece(text) for text in texts[1:])
        else:
            _, self._first, self._carry = _base64_piece(texts[0], 0)
            # Indexed by how many bytes of an unfinished group come before the text.
            self._base64_pieces = tuple(
                tuple(_base64_piece(text, offset) for offset in range(3)) for text in texts[1:]
            )

    def fill(self, values: Mapping[str, str]) -> EncodedBody:
        """The body with each hole replaced by its value.

        Raises:
            KeyError: a hole has no value.
            ValueError: a value has a line break in it.
        """
        line_values = [_value(values[name]) for name in self._names]
        if not all(line_values):
            text = "".join(values[part] if index % 2 else part for index, part in enumerate(self._parts))
            return encode(text)
        encoded = [self._first]
        if self.encoding == "quoted-printable":
            for value, piece in zip(line_values, self._qp_pieces, strict=True):
                encoded.append(_qp_piece(value))
                encoded.append(piece)
            return EncodedBody("quoted-printable", b"".join(encoded))
        carry = self._carry
        for value, offsets in zip(line_values, self._base64_pieces, strict=True):
            pending = carry + value
            head, middle, tail = offsets[len(pending) % 3]
            pending += head
            whole = len(pending) - len(pending) % 3
            if whole:
                encoded.append(_base64_lines(pending[:whole]))
            encoded.append(middle)
            # Bytes the next value's line begins with: what the head could not
            # complete (a text shorter than a group), or the text's last bytes.
            carry = pending[whole:] + tail
        if carry:
            encoded.append(_base64_lines(carry))
        return EncodedBody("base64", b"".join(encoded))


def _value(value: str) -> bytes:
    if "\r" in value or "\n" in value:
        raise ValueError(f"a value must be one line: {value!r}")
    return value.encode("utf-8")


def _crlf(text: str) -> bytes:
    return text.encode("utf-8").replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def _base64_length(size: int) -> int:
    length = 4 * -(-size // 3)
    return length + 2 * -(-length // _LINE)  # CRLF after every 76


def _quoted_printable_first(data: bytes) -> bool:
    """Whether quoted-printable may be the shorter: it is at least this long (three
    characters for every byte above 127 and every "="), often enough to know."""
    at_least = len(data) + 2 * (len(data) - len(data.translate(None, _HIGH_BYTES)) + data.count(b"="))
    return at_least <= _base64_length(len(data))


# --- quoted-printable ----------------------------------------------------------------


def _quoted_printable(data: bytes) -> bytes:
    """Quoted-printable of CRLF text, CRLF line endings kept, no line starting with "."."""
    # b2a_qp keeps the line endings of its input (it takes the first one as the
    # style), encodes trailing whitespace and breaks long lines with soft breaks...
    encoded = binascii.b2a_qp(data, istext=True)
    # ...but leaves a "." at the start of a line, which SMTP would have to double
    # (and pieces of a template each start a line): it is encoded too...
    if encoded.startswith(b"."):
        encoded = b"=2E" + encoded[1:]
    if b"\r\n." in encoded:
        encoded = encoded.replace(b"\r\n.", b"\r\n=2E")
    # ...and a line that ends in encoded whitespace, or now starts with "=2E", can
    # come out longer than 76.
    lines = encoded.split(b"\r\n")
    if max(map(len, lines)) <= _LINE:
        return encoded
    return b"\r\n".join(_rewrap_qp(line) for line in lines)


def _rewrap_qp(line: bytes, width: int = _LINE) -> bytes:
    """A quoted-printable line cut with soft breaks into lines of at most 76, the
    last at most ``width``, never inside an ``=XX`` escape nor before a "."."""
    pieces = []
    while len(line) > width:
        cut = _LINE - 1
        while b"=" in line[cut - 2 : cut]:
            cut -= 1
        pieces.append(line[:cut] + b"=")
        line = line[cut:]
        if line.startswith(b"."):
            line = b"=2E" + line[1:]
    pieces.append(line)
    return b"\r\n".join(pieces)


def _qp_piece(data: bytes) -> bytes:
    """Quoted-printable of CRLF text that may stop mid-line, ending with a line
    break either way: its own, or a soft one where the text goes on."""
    if not data or data.endswith(b"\r\n"):
        return _quoted_printable(data)
    # Encoded as a whole line, so that b2a_qp sees CRLF (a text without any line
    # break would get bare-LF soft breaks) and encodes trailing whitespace; the line
    # break becomes a soft one, for which the last line keeps a character free.
    encoded = _quoted_printable(data + b"\r\n")[:-2]
    before, crlf, last = encoded.rpartition(b"\r\n")
    return before + crlf + _rewrap_qp(last, _LINE - 1) + b"=\r\n"


# --- base64 --------------------------------------------------------------------------


def _base64_lines(data: bytes) -> bytes:
    """Base64 in lines of 76 characters (the last may be shorter), each ending with CRLF."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _base64_piece(data: bytes, offset: int) -> tuple[bytes, bytes, bytes]:
    """``data`` when ``offset`` bytes (0 to 2) of an unfinished 3-byte group come
    before it: the bytes that finish that group, the encoded whole groups after
    them, and the up to two bytes left over."""
    head = data[: (3 - offset) % 3]
    rest = data[len(head) :]
    whole = len(rest) - len(rest) % 3
    return head, _base64_lines(rest[:whole]) if whole else b"", rest[whole:]
