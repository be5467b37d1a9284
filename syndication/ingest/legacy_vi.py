"""Vietnamese text written in the legacy font encodings (TCVN3, VNI, VISCII), found and
converted to Unicode.

Before Unicode, Vietnamese pages were typed in fonts that put Vietnamese letters where
windows-1252 has other characters: a browser showed them right only with the font (".VnTime",
"VNI-Times"), and read by charset they are mojibake: TCVN3 "§¶ng bé Khèi", VNI "Ñaûng boä
Khoái" for "Đảng bộ Khối". The markup around them is ASCII; only text is affected.

``repair`` reads the text nodes of a decoded document back as the bytes they were, reads
those bytes in each legacy encoding and scores the words: a word counts for an encoding when
its reading there is a Vietnamese syllable and its reading as decoded is not. Proper Unicode
Vietnamese (UTF-8, windows-1258) reads as Vietnamese already and is never changed, nor are
Western pages ("café", "Ñandú", "naïve" read as no Vietnamese syllable in any encoding).
A confident reading is converted; a weak one is left as is with a warning.

Tables (as data below):

- TCVN3 (ABC): TCVN 5712:1993, its VN3 repertoire (lower-case letters and Ă Â Ê Ô Ơ Ư Đ, in
  0xA1-0xFE), as glibc's TCVN5712-1 charmap has them. VN3 has no capital toned letters:
  those were typed as lower-case codes in a capitals font (".VnTimeH"); text inside an
  element that names such a font (``face``, or ``font-family`` in its ``style``) is put in
  capitals, other text cannot tell and stays lower case.
- VNI (VNI-Win): a base letter followed by a mark character, from the VNI Windows keyboard
  and font layout as Unikey's converter (x-unikey ``vnconv``) implements it.
- VISCII: RFC 1456, as glibc's VISCII charmap has it.

Pure: no I/O. Imports nothing of this project but ``syndication.text``.
"""

from __future__ import annotations

import codecs
import functools
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from syndication.text import nfc

__all__ = ["ENCODINGS", "Reading", "assess", "decode", "encode", "is_syllable", "repair"]

ENCODINGS = ("TCVN3", "VNI", "VISCII")
NAMES = {"TCVN3": "TCVN3 (ABC)", "VNI": "VNI", "VISCII": "VISCII"}

# --- Tables ----------------------------------------------------------------------------------

_TCVN3 = dict(
    zip(
        bytes.fromhex(
            "a1a2a3a4a5a6a7a8a9aaabacadaeb5b6b7b8b9bbbcbdbec6c7c8c9cacbcccecfd0d1d2d3d4d5d6d7d8dc"
            "dddedfe1e2e3e4e5e6e7e8e9eaebecedeeeff1f2f3f4f5f6f7f8f9fafbfcfdfe"
        ),
        "ĂÂÊÔƠƯĐăâêôơưđàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵ",
        strict=True,
    )
)
"""TCVN3 byte -> letter; other bytes read as windows-1252."""

_VISCII_HIGH = (
    "ẠẮẰẶẤẦẨẬẼẸẾỀỂỄỆỐỒỔỖỘỢỚỜỞỊỎỌỈỦŨỤỲÕắằặấầẩậẽẹếềểễệốồổỗỠƠộờởịỰỨỪỬơớƯÀÁÂÃẢĂẳẵÈÉÊẺÌÍĨỳĐứÒÓÔạỷừửÙÚỹỵÝỡư"
    "àáâãảăữẫèéêẻìíĩỉđựòóôõỏọụùúũủýợỮ"
)
_VISCII = {0x02: "Ẳ", 0x05: "Ẵ", 0x06: "Ẫ", 0x14: "Ỷ", 0x19: "Ỹ", 0x1E: "Ỵ"} | {
    0x80 + i: char for i, char in enumerate(_VISCII_HIGH)
}
"""VISCII byte -> letter: all of 0x80-0xFF and six C0 control codes; the rest is ASCII."""

_ACUTE, _GRAVE, _HOOK, _TILDE, _DOT = "\u0301", "\u0300", "\u0309", "\u0303", "\u0323"
_CIRCUMFLEX, _BREVE, _HORN = "\u0302", "\u0306", "\u031b"
_TONES = (_ACUTE, _GRAVE, _HOOK, _TILDE, _DOT)
_VNI_MARKS = {
    # (vowel modifier, tone) -> the mark character typed after the base letter (lower case).
    ("", _ACUTE): "ù", ("", _GRAVE): "ø", ("", _HOOK): "û", ("", _TILDE): "õ", ("", _DOT): "ï",
    (_CIRCUMFLEX, ""): "â", (_CIRCUMFLEX, _ACUTE): "á", (_CIRCUMFLEX, _GRAVE): "à",
    (_CIRCUMFLEX, _HOOK): "å", (_CIRCUMFLEX, _TILDE): "ã", (_CIRCUMFLEX, _DOT): "ä",
    (_BREVE, ""): "ê", (_BREVE, _ACUTE): "é", (_BREVE, _GRAVE): "è",
    (_BREVE, _HOOK): "ú", (_BREVE, _TILDE): "ü", (_BREVE, _DOT): "ë",
}  # fmt: skip
_VNI_HORN = {"o": "ô", "u": "ö"}
"""ơ and ư are one character each in VNI (a tone mark may follow them)."""
_VNI_I = {"": "i", _ACUTE: "í", _GRAVE: "ì", _HOOK: "æ", _TILDE: "ó", _DOT: "ò"}
"""i with a tone is one character; so is ỵ ("î") and đ ("ñ")."""


@functools.cache
def _vni_table() -> dict[str, str]:
    """VNI sequence (as windows-1252 text) -> Unicode letter, both cases."""
    table: dict[str, str] = {"ñ": "đ", "î": "ỵ"}
    for base in "aeiouy":
        for (modifier, tone), mark in _VNI_MARKS.items():
            if (modifier == _CIRCUMFLEX and base not in "aeo") or (modifier == _BREVE and base != "a"):
                continue
            if base in "iy" and modifier:
                continue
            letter = nfc(base + modifier + tone)
            if base == "i":
                table[_VNI_I[tone]] = letter
            elif not (base == "y" and tone == _DOT):
                table[base + mark] = letter
    for base, horn in _VNI_HORN.items():
        table[horn] = nfc(base + _HORN)
        for tone in _TONES:
            table[horn + _VNI_MARKS[("", tone)]] = nfc(base + _HORN + tone)
    return table | {key.upper(): letter.upper() for key, letter in table.items()}


@functools.cache
def _vni_pattern() -> re.Pattern[str]:
    keys = sorted(_vni_table(), key=len, reverse=True)
    return re.compile("|".join(re.escape(key) for key in keys))


# --- Decoding and encoding -------------------------------------------------------------------


def _western(data: bytes) -> str:
    """Bytes as windows-1252 text; the five bytes it leaves undefined as ISO-8859-1."""
    return data.decode("cp1252", errors="surrogateescape").translate(_SURROGATES)


_SURROGATES = {0xDC00 + b: b for b in range(0x80, 0x100)}
"""``surrogateescape`` keeps an undefined windows-1252 byte as U+DC80-U+DCFF: back to its
ISO-8859-1 character."""


def decode(data: bytes, encoding: str) -> str:
    """``data`` read in a legacy encoding ("TCVN3", "VNI" or "VISCII"), NFC."""
    if encoding == "TCVN3":
        return nfc("".join(_TCVN3.get(b) or _western(bytes([b])) for b in data))
    if encoding == "VISCII":
        return nfc("".join(_VISCII.get(b) or chr(b) for b in data))
    if encoding == "VNI":
        table = _vni_table()
        return nfc(_vni_pattern().sub(lambda m: table[m.group(0)], _western(data)))
    raise ValueError(f"unknown legacy encoding {encoding!r}")


@functools.cache
def _reverse(encoding: str) -> dict[str, bytes]:
    if encoding == "TCVN3":
        return {char: bytes([b]) for b, char in _TCVN3.items()}
    if encoding == "VISCII":
        return {char: bytes([b]) for b, char in _VISCII.items()}
    if encoding == "VNI":
        return {letter: key.encode("cp1252") for key, letter in _vni_table().items()}
    raise ValueError(f"unknown legacy encoding {encoding!r}")


def encode(text: str, encoding: str) -> bytes:
    """Unicode text written in a legacy encoding, as a page in it would hold it. TCVN3 has no
    capital toned letters: they are written as the lower-case ones (a capitals font shows them).

    Raises:
        ValueError: a character the encoding cannot write.
    """
    reverse = _reverse(encoding)
    out = bytearray()
    for char in nfc(text):
        code = reverse.get(char)
        if code is None and encoding == "TCVN3":
            code = reverse.get(char.lower())
        if code is None:
            if ord(char) >= 0x80 or (encoding == "VISCII" and ord(char) in _VISCII):
                raise ValueError(f"{encoding} cannot write {char!r}")
            code = char.encode("ascii")
        out += code
    return bytes(out)


# --- Vietnamese syllables --------------------------------------------------------------------

_ONSET = "ngh|ng|nh|ch|gh|gi|kh|ph|th|tr|qu|[bcdđghklmnprstvx]"
_OPEN_NUCLEI = "uyê|ươ|uô|iê|yê|oo|oa|oă|oe|uâ|uê|uy|a|ă|â|e|ê|i|o|ô|ơ|u|ư|y"
"""Vowels a consonant may end (``-c -ch -m -n -ng -nh -p -t``)."""
_CLOSED_NUCLEI = (
    "oai|oay|oao|oeo|uây|uôi|uya|uyu|ươi|ươu|yêu|iêu|uơ|ai|ao|au|ay|âu|ây|eo|êu|ia|iu|oi|ôi|ơi|"
    "ua|ui|ưa|ưi|ưu|ya"
)
"""Vowels ending in a glide: nothing follows them."""
_SYLLABLE = re.compile(
    rf"(?:{_ONSET})?(?:(?:{_CLOSED_NUCLEI})|(?:{_OPEN_NUCLEI})(?P<coda>ch|ng|nh|[cmnpt])?)"
)


def is_syllable(word: str) -> bool:
    """Whether ``word`` is one Vietnamese syllable: an onset, a vowel, a coda, at most one tone
    (and only acute or dot below before a final -c, -ch, -p, -t)."""
    decomposed = unicodedata.normalize("NFD", word.lower())
    tones = [char for char in decomposed if char in _TONES]
    if len(tones) > 1:
        return False
    bare = unicodedata.normalize("NFC", "".join(char for char in decomposed if char not in _TONES))
    match = _SYLLABLE.fullmatch(bare)
    if match is None:
        return False
    stop = match.group("coda") in ("c", "ch", "p", "t")
    return not (stop and tones and tones[0] not in (_ACUTE, _DOT))


# --- Detection -------------------------------------------------------------------------------

_WORD = re.compile(rb"[A-Za-z\x80-\xff\x02\x05\x06\x14\x19\x1e]+")
_LEGACY_BYTE = re.compile(rb"[\x80-\xff\x02\x05\x06\x14\x19\x1e]")
_FONT_HINTS = {
    "TCVN3": re.compile(r"\.vn(?:time|arial|avant|book|centur|classic|commerce|cooper|helv|souvenir)", re.I),
    "VNI": re.compile(r"\bvni[- ](?:times|helve|aptima|book|centur|cooper|univer|avo)", re.I),
    "VISCII": re.compile(r"\bviscii\b", re.I),
}
"""Font names that only make sense with one encoding: they make a reading more credible."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """How well the text reads in one legacy encoding."""

    encoding: str
    votes: int
    """Words that read as Vietnamese in the encoding and not as decoded."""
    words: int
    """Words holding a non-ASCII character, but for those that are Vietnamese either way."""
    font_hint: bool
    """The page names a font of the encoding (".VnTime", "VNI-Times")."""

    @property
    def confident(self) -> bool:
        needed = 1 if self.font_hint else 3
        return self.votes >= needed and self.votes >= 0.7 * self.words

    @property
    def plausible(self) -> bool:
        return (self.votes >= 2 and self.votes >= 0.3 * self.words) or (self.font_hint and self.votes >= 1)


ASSESSED_WORDS = 5000
"""Words looked at to choose an encoding: plenty of evidence, and a bound on the work."""


def _words(data: bytes, text: str) -> Iterator[tuple[bytes, str]]:
    """The words of a segment holding a non-ASCII byte: their bytes, and the decoded text of
    them (one character a byte)."""
    for match in _WORD.finditer(data):
        word = match.group(0)
        if _LEGACY_BYTE.search(word):
            yield word, text[match.start() : match.end()]


def assess(segments: list[tuple[bytes, str]], *, markup: str = "") -> Reading | None:
    """The legacy encoding the text segments read best in, or ``None`` when none fits at all.

    Each segment is its bytes as the document held them and its text as decoded. ``markup``
    (the document's tags) is searched for font names. The first ``ASSESSED_WORDS`` words count."""
    seen: Counter[tuple[bytes, str]] = Counter()
    for data, text in segments:
        seen.update(itertools.islice(_words(data, text), ASSESSED_WORDS - seen.total()))
        if seen.total() >= ASSESSED_WORDS:
            break
    best: Reading | None = None
    for encoding in ENCODINGS:
        votes = words = 0
        for (word, as_is), count in seen.items():
            if _lone_symbol(as_is):
                continue
            reading, fits = _read(word, encoding)
            if fits and _fits_as_is(as_is):
                continue  # Vietnamese either way ("Khoái", "cô" in VNI): says nothing
            words += count
            # One letter read as a word ("ở") is too easily a coincidence to count.
            if fits and len(reading) > 1:
                votes += count
        found = Reading(
            encoding=encoding, votes=votes, words=words, font_hint=bool(_FONT_HINTS[encoding].search(markup))
        )
        if found.votes and (best is None or (found.votes, found.font_hint) > (best.votes, best.font_hint)):
            best = found
    return best


@functools.lru_cache(maxsize=16384)
def _read(word: bytes, encoding: str) -> tuple[str, bool]:
    """A word in a legacy encoding, and whether it is a Vietnamese syllable there."""
    reading = decode(word, encoding)
    return reading, is_syllable(reading)


@functools.lru_cache(maxsize=16384)
def _fits_as_is(as_is: str) -> bool:
    return is_syllable(nfc(as_is))


def _lone_symbol(as_is: str) -> bool:
    """ "©", "»", "°" standing alone are symbols, whatever a legacy font would show."""
    return len(as_is) == 1 and not unicodedata.category(as_is).startswith("L")


# --- Repairing a document --------------------------------------------------------------------

_MARKUP = re.compile(r"<!--.*?(?:-->|\Z)|<!\[CDATA\[|\]\]>|<[^<>]*>", re.DOTALL)
"""A comment (to its end, or the document's), a CDATA fence (a feed's HTML is inside), a tag.
Each alternative stops at the next "<" or consumes the rest: linear on hostile input."""
_TELLTALE = re.compile(
    "["
    + "".join(
        sorted(
            {chr(b) for b in range(0xA1, 0x100)}
            - set("àáâãèéêìíòóôõùúýÀÁÂÃÈÉÊÌÍÒÓÔÕÙÚÝ")  # Vietnamese letters in Unicode too
            - set("©®°±·«»×÷")  # common symbols of Unicode pages
        )
    )
    + "\u0080-\u009f\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u017d\u0161\u203a\u0153\u017e\u0178"
    + "]"
)
"""Characters that legacy-encoded text shows and Unicode Vietnamese does not: a document
without one is not looked at further (most are not; this keeps ``repair`` cheap)."""
_RAW_TEXT = re.compile(r"<(script|style)\b", re.IGNORECASE)
_TEXT_ATTRIBUTE = re.compile(r"""(\b(?:content|alt|title)\s*=\s*)("[^"<>]*"|'[^'<>]*')""", re.IGNORECASE)


def _byte_view(codec: str) -> Callable[[str], bytes | None]:
    """How to get back the bytes a piece of decoded text was: a single-byte charset encodes
    it again; after UTF-8 (text that was mojibake already when stored) a character is its
    windows-1252 (else ISO-8859-1) byte, and text with any other character was never legacy."""
    if _single_byte(codec):

        def again(text: str) -> bytes | None:
            try:
                return text.encode(codec)
            except UnicodeEncodeError:
                return None

        return again

    def western(text: str) -> bytes | None:
        for charset in ("cp1252", "latin-1"):
            try:
                return text.encode(charset)
            except UnicodeEncodeError:
                continue
        out = bytearray()
        for char in text:
            try:
                out += char.encode("cp1252")
            except UnicodeEncodeError:
                if ord(char) > 0xFF:
                    return None
                out.append(ord(char))
        return bytes(out)

    return western


@functools.cache
def _single_byte(codec: str) -> bool:
    try:
        decoder = codecs.getincrementaldecoder(codec)("replace")
    except LookupError:
        return False
    return all(len(decoder.decode(bytes([b]))) == 1 for b in range(0x80, 0x100))


def repair(text: str, *, codec: str) -> tuple[str, str | None]:
    """``text`` (a document as ``codec`` decoded it, before NFC) with its legacy-encoded text
    converted to Unicode when the reading is confident; a warning when it was converted or
    looks legacy but is not converted."""
    if text.isascii() or not _TELLTALE.search(text):
        return text, None
    view = _byte_view(codec)
    pieces = _pieces(text)
    segments = []
    for is_markup, piece in pieces:
        data = None if is_markup or piece.isascii() else view(piece)
        if data is not None:
            segments.append((data, piece))
    markup = "".join(piece for is_markup, piece in pieces if is_markup)
    reading = assess(segments, markup=markup) if segments else None
    if reading is None or not (reading.confident or reading.plausible):
        return text, None
    name = NAMES[reading.encoding]
    if not reading.confident:
        return text, (
            f"text looks like a legacy Vietnamese encoding ({name}?) but detection is unsure "
            f"({reading.votes} of {reading.words} words read as Vietnamese): stored as is"
        )
    convert = functools.partial(_convert, encoding=reading.encoding, view=view)
    capitals = _Capitals()
    out = []
    for is_markup, piece in pieces:
        if not is_markup:
            converted = convert(piece)
            out.append(converted.upper() if capitals.active else converted)
            continue
        capitals.see(piece)
        if piece.startswith("<") and not piece.startswith(("<!--", "<![", "</")) and not piece.isascii():
            out.append(_TEXT_ATTRIBUTE.sub(lambda m: m.group(1) + convert(m.group(2)), piece))
        else:
            out.append(piece)
    return "".join(out), f"converted text from the legacy Vietnamese encoding {name} to Unicode"


_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)")
_CAPITALS_FONT = re.compile(r"""(?:face\s*=\s*["']?|font-family\s*:\s*["']?)\.vn[a-z ]*h\b""", re.IGNORECASE)
"""A TCVN3 capitals font (".VnTimeH", ".VnArialH"): it shows lower-case codes as capitals."""


class _Capitals:
    """Whether the text so far is inside an element set in a TCVN3 capitals font, from the
    tags seen: the element that names the font, until it closes (same-name nesting counted)."""

    def __init__(self) -> None:
        self._open: list[list[str | int]] = []  # [tag name, nesting depth]

    @property
    def active(self) -> bool:
        return bool(self._open)

    def see(self, tag: str) -> None:
        match = _TAG.match(tag)
        if match is None:
            return
        closing, name = match.group(1) == "/", match.group(2).lower()
        top = self._open[-1] if self._open else None
        if closing:
            if top is not None and top[0] == name:
                top[1] = int(top[1]) - 1
                if top[1] == 0:
                    self._open.pop()
        elif _CAPITALS_FONT.search(tag):
            self._open.append([name, 1])
        elif top is not None and top[0] == name and not tag.endswith("/>"):
            top[1] = int(top[1]) + 1


def _pieces(text: str) -> list[tuple[bool, str]]:
    """The document cut into markup and text, ``(is markup, piece)``; a script's or a style
    sheet's content counts as markup."""
    pieces: list[tuple[bool, str]] = []
    position = 0
    lowered = text.lower()
    for match in _MARKUP.finditer(text):
        if match.start() < position:
            continue  # inside a script or style element
        pieces.append((False, text[position : match.start()]))
        end = match.end()
        raw = _RAW_TEXT.match(match.group(0))
        if raw:
            close = lowered.find(f"</{raw.group(1).lower()}", end)
            end = len(text) if close < 0 else close
        pieces.append((True, text[match.start() : end]))
        position = end
    pieces.append((False, text[position:]))
    return pieces


def _convert(piece: str, *, encoding: str, view: Callable[[str], bytes | None]) -> str:
    """A text piece in ``encoding`` read as Unicode, word by word: a lone symbol stays."""
    data = None if piece.isascii() else view(piece)
    if data is None:
        return piece
    out = []
    position = 0
    for match in _WORD.finditer(data):
        out.append(piece[position : match.start()])
        as_is = piece[match.start() : match.end()]
        word = match.group(0)
        out.append(as_is if word.isascii() or _lone_symbol(as_is) else _read(word, encoding)[0])
        position = match.end()
    out.append(piece[position:])
    return "".join(out)
