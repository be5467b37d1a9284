"""Vietnamese text rules shared by every stage: NFC, tone-placement keys, search keys, similarity.

Pure: no I/O, standard library only. Sits at the bottom layer beside ``types`` so the
store (search, dedup) and ingest (normalisation) agree on one definition.

Vietnamese is written with two kinds of diacritics: vowel-quality marks (circumflex,
breve, horn: â ê ô ă ơ ư) that make different letters, and five tone marks (grave,
acute, tilde, hook above, dot below). Publishers disagree on which vowel of a syllable
carries the tone ("hoà"/"hòa", "uỷ"/"ủy"), so ``tone_key`` moves every tone mark to one
canonical vowel. ``search_key`` drops all diacritics, as people type without them.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, tzinfo

WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")
"""Monday first, as ``datetime.weekday()`` counts."""

NEAR_DUPLICATE_THRESHOLD = 0.9
"""``similarity`` at or above this means two bodies are the same story."""

ELLIPSIS = "…"

# XML 1.0 forbids C0 controls other than tab/LF/CR, lone surrogates and U+FFFE/U+FFFF;
# C1 controls (and DEL) are legal but never meant in text: they are mojibake leftovers.
_ILLEGAL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
"""Bidi embeddings, overrides and isolates (LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI):
they reorder what is displayed, so that a title, an author or a link text reads other
than it is written ("Trojan Source"). Vietnamese never needs them; ``nfc`` drops them."""
# Dropped by ``nfc``: both of the above, in one pass.
_DROPPED_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff" + BIDI_CONTROLS + "]"
)
# Invisible characters that only get in the way of one-line fields.
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_WHITESPACE = re.compile(r"\s+")
_NON_WORD = re.compile(r"[\W_]+")

_TONE_MARKS = frozenset("\u0300\u0301\u0303\u0309\u0323")
"""Grave (huyền), acute (sắc), tilde (ngã), hook above (hỏi), dot below (nặng)."""
_QUALITY_MARKS = frozenset("\u0302\u0306\u031b")
"""Circumflex, breve, horn: part of the letter, never moved or removed by ``tone_key``."""
_VOWELS = frozenset("aeiouy")
_VIETNAMESE_BASES = frozenset("abcdefghijklmnopqrstuvwxyzđ")
_TONE_ON_SECOND = frozenset({"oa", "oe", "uy"})
"""Open two-vowel rhymes whose tone goes on the second vowel (the "new style": hoà, khoẻ, uỷ)."""


def nfc(text: str) -> str:
    """NFC-normalise and drop XML-illegal control characters (keeps tab, LF, CR).

    C1 controls (U+0080 to U+009F), DEL and the ``BIDI_CONTROLS`` are dropped as well.
    Everything ingest keeps goes through here: titles, authors, link texts, bodies.
    """
    return unicodedata.normalize("NFC", _DROPPED_CHARS.sub("", text))


def truncate(text: str, limit: int) -> str:
    """Cap ``text`` at ``limit`` characters, cutting at a space when one is near the end
    and marking the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return text[:limit]
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= (limit * 4) // 5:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


_SIZE_UNITS = (
    ("GiB", 1024**3),
    ("GB", 1000**3),
    ("MiB", 1024**2),
    ("MB", 1000**2),
    ("KiB", 1024),
    ("kB", 1000),
)


def size_text(size: int) -> str:
    """A size in bytes as a configuration writes it: ``"1 GiB"``, ``"2 MB"``, ``"1.5 GiB"``."""
    for unit, factor in _SIZE_UNITS:
        if size >= factor and (size * 10) % factor == 0:
            return f"{size / factor:g} {unit}"
    return f"{size} bytes"


def clean_line(text: str, *, limit: int = 1000) -> str:
    """A one-line field (title, author): NFC, control chars removed, whitespace collapsed,
    capped at ``limit`` characters."""
    text = _INVISIBLE.sub("", nfc(text))
    return truncate(_WHITESPACE.sub(" ", text).strip(), limit)


def _is_word_char(char: str) -> bool:
    return unicodedata.category(char)[0] in "LNM"


def _words(decomposed: str) -> list[str]:
    """Split NFD text into runs of letters, digits and combining marks."""
    words: list[str] = []
    current: list[str] = []
    for char in decomposed:
        if _is_word_char(char):
            current.append(char)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return words


def _canonical_tone(word: str) -> str:
    """Move the one tone mark of a lower-case NFD Vietnamese syllable to its canonical vowel.

    Words that do not look like one Vietnamese syllable (other marks, several tone
    marks, several vowel groups) are returned unchanged, which keeps the key idempotent.
    """
    letters: list[list[str]] = []  # [base, *quality marks]
    tones: list[str] = []
    for char in word:
        if char in _TONE_MARKS:
            tones.append(char)
        elif char in _QUALITY_MARKS and letters:
            letters[-1].append(char)
        elif char in _VIETNAMESE_BASES:
            letters.append([char])
        else:
            return word
    if len(tones) != 1:
        return word
    bases = "".join(letter[0] for letter in letters)
    vowels = [i for i, base in enumerate(bases) if base in _VOWELS]
    # "qu" and "gi" (before another vowel) are consonants.
    if bases[:2] in ("qu", "gi") and vowels[:2] == [1, 2]:
        vowels = vowels[1:]
    if not vowels or vowels[-1] - vowels[0] != len(vowels) - 1:
        return word
    marked = [i for i in vowels if len(letters[i]) > 1]
    if marked:
        target = marked[-1]
    elif vowels[-1] != len(letters) - 1 or len(vowels) == 3:
        # A closed syllable carries the tone on its last vowel; "oai", "uyu" on the middle one.
        target = vowels[-1] if len(vowels) < 3 else vowels[1]
    elif len(vowels) == 2:
        pair = bases[vowels[0]] + bases[vowels[1]]
        target = vowels[1] if pair in _TONE_ON_SECOND else vowels[0]
    else:
        target = vowels[0]
    letters[target].append(tones[0])
    return "".join("".join(letter) for letter in letters)


def tone_key(text: str) -> str:
    """Dedup key: lower-case NFC text with Vietnamese tone-mark placement made canonical,
    whitespace and punctuation collapsed. ``tone_key("Uỷ ban") == tone_key("ủy  ban")``
    and ``tone_key("hoà") == tone_key("hòa")``; tones are kept, so "Hà" and "Hạ" differ."""
    decomposed = unicodedata.normalize("NFD", _ILLEGAL_CHARS.sub("", text))
    decomposed = unicodedata.normalize("NFD", decomposed.casefold())
    words = [_canonical_tone(word) for word in _words(decomposed)]
    return unicodedata.normalize("NFC", " ".join(words))


# The combining diacritical blocks, removed with one C-level regex pass. Vietnamese (and
# every Latin script) decomposes into these; only other scripts need the slow check below.
_COMMON_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")
_BEYOND_LATIN = re.compile("[\u0370-\U0010ffff]")


def _strip_marks(text: str) -> str:
    text = _COMMON_MARKS.sub("", text)
    if _BEYOND_LATIN.search(text) is None:
        return text
    return "".join(char for char in text if char < "\u0300" or unicodedata.category(char)[0] != "M")


def search_key(text: str) -> str:
    """Search key: lower-case, every diacritic removed, "đ" -> "d", punctuation and
    whitespace collapsed to single spaces. ``search_key("Hà Nội!") == "ha noi"``."""
    text = unicodedata.normalize("NFKD", _ILLEGAL_CHARS.sub("", text).casefold()).replace("đ", "d")
    odd = _NOT_ASCII_OR_MARK.findall(text)
    if any(char.isalnum() or unicodedata.category(char)[0] == "M" for run in odd for char in run):
        # Letters beyond Latin (Cyrillic, Chinese, "ø"...), or marks outside the block the
        # fast path strips (they join letters, not split words): the general, slower rule.
        return search_key_general(text)
    # Vietnamese and other Latin text: after NFKD only ASCII, combining marks and a
    # little punctuation remain, so bytes operations do the same work several times
    # faster (this runs over every article body). ``search_key_general`` is the rule.
    ascii_bytes = _NOT_ASCII_OR_MARK.sub(" ", text).encode("ascii", "ignore")
    return " ".join(ascii_bytes.translate(_ASCII_WORD_BYTES).decode("ascii").split())


def search_key_general(text: str) -> str:
    """``search_key`` by its general rule alone (tests check the fast path against it)."""
    text = unicodedata.normalize("NFKD", _ILLEGAL_CHARS.sub("", text).casefold()).replace("đ", "d")
    # Casefold again: compatibility forms decompose to capitals ("𝕊" -> "S").
    return _NON_WORD.sub(" ", _strip_marks(text).casefold()).strip()


_NOT_ASCII_OR_MARK = re.compile("[^\x00-\x7f\u0300-\u036f]+")
_ASCII_WORD_BYTES = bytes(
    c if (0x30 <= c <= 0x39 or 0x61 <= c <= 0x7A) else (c + 32 if 0x41 <= c <= 0x5A else 0x20)
    for c in range(256)
)
"""Letters and digits kept (upper case lowered), every other byte a space."""


def _shingles(words: list[str], size: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


def similarity(a: str, b: str) -> float:
    """How alike two texts are, 0.0 to 1.0 (Jaccard of word shingles of their search keys).
    Fast enough to call on article bodies of tens of kilobytes.

    Shingles are three words long; when either text is shorter than that, plain word
    sets are compared instead. An empty text is like nothing,
    not even another empty text: there is no story to be the same as.
    """
    words_a = search_key(a).split()
    words_b = search_key(b).split()
    if not words_a or not words_b:
        return 0.0
    size = 3 if min(len(words_a), len(words_b)) >= 3 else 1
    shingles_a = _shingles(words_a, size)
    shingles_b = _shingles(words_b, size)
    return len(shingles_a & shingles_b) / len(shingles_a | shingles_b)


def vietnamese_date(moment: datetime, zone: tzinfo, *, with_time: bool = False) -> str:
    """``moment`` in ``zone`` as people read it: ``Thứ Sáu, 27/11/2026`` (and ``08:30``
    with ``with_time``). The one definition for web pages, feeds' pages and e-mails.

    Raises:
        ValueError: ``moment`` is naive.
    """
    if moment.tzinfo is None:
        raise ValueError("a naive datetime cannot be shown in a time zone")
    local = moment.astimezone(zone)
    return (
        f"{WEEKDAYS[local.weekday()]}, {local:%d/%m/%Y %H:%M}"
        if with_time
        else (f"{WEEKDAYS[local.weekday()]}, {local:%d/%m/%Y}")
    )
