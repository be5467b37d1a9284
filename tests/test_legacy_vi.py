"""Legacy Vietnamese font encodings (TCVN3, VNI, VISCII): the tables, the detection, and what
``decode_document`` does with them, for pages and feeds alike."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syndication.ingest import legacy_vi
from syndication.ingest.normalize import decode_document
from syndication.ingest.parse_feed import parse_feed
from syndication.text import nfc
from tests.vietnamese import encode_cp1258

DATA = Path(__file__).parent / "data"
SAIGON = ZoneInfo("Asia/Ho_Chi_Minh")

VOWELS = "aăâeêioôơuưy"
TONES = ("", "\u0301", "\u0300", "\u0309", "\u0303", "\u0323")
LOWER = [nfc(vowel + tone) for vowel in VOWELS for tone in TONES] + ["đ"]
ALPHABET = LOWER + [letter.upper() for letter in LOWER]
"""Every Vietnamese vowel letter with every tone, and đ; lower and upper case (146 letters)."""

SENTENCE = "Đảng bộ Khối các cơ quan tỉnh tổ chức Hội nghị học tập, quán triệt Nghị quyết Trung ương"
CONVERTED = "converted text from the legacy Vietnamese encoding"
UNSURE = "text looks like a legacy Vietnamese encoding"


def test_alphabet_is_complete() -> None:
    assert len(set(ALPHABET)) == 146
    assert all(unicodedata.is_normalized("NFC", letter) and len(letter) == 1 for letter in ALPHABET)


@pytest.mark.parametrize("encoding", ["VNI", "VISCII"])
def test_every_letter_round_trips(encoding: str) -> None:
    for letter in ALPHABET:
        assert legacy_vi.decode(legacy_vi.encode(letter, encoding), encoding) == letter, letter
    text = " ".join(ALPHABET)
    assert legacy_vi.decode(legacy_vi.encode(text, encoding), encoding) == text


def test_every_tcvn3_letter_round_trips_capitals_as_the_font_shows_them() -> None:
    # TCVN3 (VN3) has the lower-case letters and Ă Â Ê Ô Ơ Ư Đ; a capital toned letter was
    # typed as the lower-case code in a capitals font (".VnTimeH").
    own_capitals = set("ĂÂÊÔƠƯĐ")
    for letter in ALPHABET:
        expected = letter if letter.islower() or letter in own_capitals else letter.lower()
        if letter.upper() == letter and letter.lower() in "aeiouy":  # plain A E I O U Y are ASCII
            expected = letter
        assert legacy_vi.decode(legacy_vi.encode(letter, "TCVN3"), "TCVN3") == expected, letter


@pytest.mark.parametrize(
    ("encoding", "mojibake"),
    [
        ("TCVN3", "§¶ng bé Khèi c¸c c¬ quan tØnh"),
        ("VNI", "Ñaûng boä Khoái caùc cô quan tænh"),
    ],
)
def test_the_issue_examples_read_as_unicode(encoding: str, mojibake: str) -> None:
    assert legacy_vi.encode("Đảng bộ Khối các cơ quan tỉnh", encoding) == mojibake.encode("cp1252")

    text, warning = decode_document(
        f"<p>{mojibake}</p><p>{mojibake}</p>".encode("cp1252"), declared="windows-1252"
    )

    assert text == "<p>Đảng bộ Khối các cơ quan tỉnh</p>" * 2
    assert warning == f"{CONVERTED} {legacy_vi.NAMES[encoding]} to Unicode"


@pytest.mark.parametrize("encoding", legacy_vi.ENCODINGS)
@pytest.mark.parametrize("declared", [None, "iso-8859-1", "windows-1252"])
def test_legacy_page_is_converted_whatever_its_label(encoding: str, declared: str | None) -> None:
    content = b"<html><head><title>" + legacy_vi.encode(SENTENCE, encoding) + b"</title></head></html>"

    text, warning = decode_document(content, declared=declared)

    assert text == f"<html><head><title>{SENTENCE}</title></head></html>"
    assert unicodedata.is_normalized("NFC", text)
    assert warning is not None
    assert f"{CONVERTED} {legacy_vi.NAMES[encoding]} to Unicode" in warning


def test_mojibake_stored_as_utf8_is_converted() -> None:
    # A site moved to UTF-8 that kept the TCVN3 characters as they looked.
    mojibake = legacy_vi.encode(SENTENCE, "TCVN3").decode("cp1252")

    text, warning = decode_document(f"<p>{mojibake}</p>".encode(), declared="utf-8")

    assert text == f"<p>{SENTENCE}</p>"
    assert warning == f"{CONVERTED} TCVN3 (ABC) to Unicode"


def test_markup_lone_symbols_and_unicode_text_stay() -> None:
    body = legacy_vi.encode(SENTENCE, "TCVN3").decode("cp1252")
    page = (
        f'<p title="{body}">{body}</p><p>Trang chủ » Tin tức</p><p>© 2026 — 25°C</p>'
        "<script>var s = '§¶';</script><!-- §¶ -->"
    )

    text, _ = decode_document(page.encode("utf-8"), declared=None)

    assert text == (
        f'<p title="{SENTENCE}">{SENTENCE}</p><p>Trang chủ » Tin tức</p><p>© 2026 — 25°C</p>'
        "<script>var s = '§¶';</script><!-- §¶ -->"
    )


def test_a_font_name_makes_a_short_text_credible() -> None:
    words = legacy_vi.encode("Đảng uỷ", "TCVN3")

    unsure = decode_document(b"<b>" + words + b"</b>", declared="windows-1252")
    with_font = decode_document(b'<font face=".VnTime">' + words + b"</font>", declared="windows-1252")

    assert unsure[0] == "<b>" + words.decode("cp1252") + "</b>"
    assert unsure[1] is not None
    assert unsure[1].startswith(f"{UNSURE} (TCVN3 (ABC)?) but detection is unsure")
    assert unsure[1].endswith("stored as is")
    assert with_font == ('<font face=".VnTime">Đảng uỷ</font>', f"{CONVERTED} TCVN3 (ABC) to Unicode")


# --- Never a false positive ------------------------------------------------------------------

WESTERN = [
    "Le café où nous étions était à côté de la gare; la façade ancienne, naïve et très élégante.",
    "Ñandú, jalapeño, piñata, São Paulo, Zürich, Ångström, über, résumé, déjà vu, crème brûlée.",
    "Das Bürgeramt öffnet um 8 Uhr; Grüße aus München und Köln. Ça va? Où est la bibliothèque?",
    "El niño comió una piña en Córdoba; la canción «Señor» es muy bonita — ¿verdad? ¡Olé!",
    "© 2026 Café Society · 25°C ± 2 · ½ price · «quoted» · naïveté, coöperate, Noël, Zoë.",
]


@pytest.mark.parametrize("text", WESTERN)
@pytest.mark.parametrize("codec", ["windows-1252", "utf-8"])
def test_western_text_is_never_converted(text: str, codec: str) -> None:
    content = f"<html><body><p>{text}</p><p>{text}</p></body></html>".encode(codec)

    decoded, warning = decode_document(content, declared=codec)

    assert decoded == f"<html><body><p>{text}</p><p>{text}</p></body></html>"
    assert warning is None


def golden_documents() -> list[Path]:
    legacy = ("tcvn3-", "vni-")
    pages = [p for p in (DATA / "portal").glob("*.html") if not p.name.startswith(legacy)]
    return sorted(pages + [p for p in (DATA / "feeds").iterdir() if p.suffix in (".xml", ".json", ".rss")])


@pytest.mark.parametrize("path", golden_documents(), ids=lambda p: p.name)
def test_existing_goldens_are_not_legacy(path: Path) -> None:
    text, warning = decode_document(path.read_bytes(), declared=None)

    assert warning is None or "legacy" not in warning
    assert legacy_vi.repair(text, codec="utf_8") == (text, None)


vietnamese_text = st.lists(
    st.sampled_from([*ALPHABET, *"bcdghklmnpqrstvx", " ", ", ", ". "]), min_size=1, max_size=80
).map("".join)


@given(vietnamese_text)
def test_unicode_vietnamese_is_never_changed(text: str) -> None:
    for content in (text.encode("utf-8"), encode_cp1258(text)):
        decoded, warning = decode_document(b"<p>" + content + b"</p>", declared=None)

        assert decoded == f"<p>{nfc(text)}</p>"
        assert warning is None or "legacy" not in warning


@given(st.text(alphabet=st.characters(max_codepoint=0xFF, exclude_categories=("Cs",)), max_size=200))
def test_repair_never_fails_and_touches_no_markup(text: str) -> None:
    repaired, _ = legacy_vi.repair(f"<a href='x'>{text}</a>", codec="latin_1")

    assert repaired.startswith("<a href='x'>")
    assert repaired.endswith("</a>")


# --- Syllables -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "word", ["Đảng", "bộ", "khối", "nghiêng", "quyết", "giữ", "ương", "chuyện", "ở", "oái", "khuya", "gì"]
)
def test_vietnamese_syllables(word: str) -> None:
    assert legacy_vi.is_syllable(word)


@pytest.mark.parametrize("word", ["café", "naïve", "Zürich", "hát̀", "bảt", "Ñandú", "straße", "§¶ng", "hoàá"])
def test_not_vietnamese_syllables(word: str) -> None:
    assert not legacy_vi.is_syllable(word)


# --- Feeds and pages -------------------------------------------------------------------------


def test_tcvn3_feed_is_converted_with_a_warning() -> None:
    title = legacy_vi.encode("Hội nghị tổng kết công tác xây dựng Đảng năm 2026", "TCVN3")
    summary = legacy_vi.encode("Đảng uỷ Khối các cơ quan tỉnh tổ chức hội nghị", "TCVN3")
    content = (
        b'<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>Tin</title>'
        b"<link>https://dangbokhoi.example.vn/</link><item><title>" + title + b"</title>"
        b"<link>https://dangbokhoi.example.vn/a-1.html</link><description><![CDATA[<p>"
        + summary
        + b"</p>]]></description></item></channel></rss>"
    )

    doc = parse_feed(content, url="https://dangbokhoi.example.vn/rss", declared_charset=None, tz=SAIGON)

    (article,) = doc.articles
    assert article.title == "Hội nghị tổng kết công tác xây dựng Đảng năm 2026"
    assert article.summary == "Đảng uỷ Khối các cơ quan tỉnh tổ chức hội nghị"
    assert f"{CONVERTED} TCVN3 (ABC) to Unicode" in doc.warnings


@pytest.mark.parametrize(("name", "encoding"), [("tcvn3-bai-viet", "TCVN3"), ("vni-bai-viet", "VNI")])
def test_legacy_fixtures_are_what_the_tables_write(name: str, encoding: str) -> None:
    fixture = (DATA / "portal" / f"{name}.html").read_bytes()

    assert legacy_vi.encode("Đảng bộ Khối tổ chức hội nghị", encoding) in fixture
    assert fixture.isascii() is False
    assert "Đảng".encode() not in fixture


def test_unclosed_script_and_comment_hold_no_text() -> None:
    body = legacy_vi.encode(SENTENCE, "TCVN3")
    for opening in (b"<script>var s = '", b"<!-- "):
        content = b"<p>" + body + b"</p>" + opening + body

        text, warning = decode_document(content, declared="windows-1252")

        assert text == f"<p>{SENTENCE}</p>" + (opening + body).decode("cp1252")
        assert warning == f"{CONVERTED} TCVN3 (ABC) to Unicode"


def test_text_in_a_tcvn3_capitals_font_reads_in_capitals() -> None:
    # ".VnTimeH" shows the lower-case codes as capitals; the capitals font ends with its element.
    title = legacy_vi.encode("đảng bộ khối", "TCVN3")
    body = legacy_vi.encode(SENTENCE, "TCVN3")
    content = (
        b'<font face=".VnTimeH"><b>' + title + b"</b> <font>" + title + b"</font> " + title + b"</font>"
        b'<p style="font-family: .VnArialH">' + title + b"</p><p>" + body + b"</p>"
    )

    text, _ = decode_document(content, declared="windows-1252")

    assert text == (
        '<font face=".VnTimeH"><b>ĐẢNG BỘ KHỐI</b> <font>ĐẢNG BỘ KHỐI</font> ĐẢNG BỘ KHỐI</font>'
        f'<p style="font-family: .VnArialH">ĐẢNG BỘ KHỐI</p><p>{SENTENCE}</p>'
    )
