"""Body encodings: ``encode`` for one text, ``BodyTemplate`` for a body shared by many
messages with personal values put in per message.

A filled template must decode to exactly what the whole personalised text decodes to
when encoded in one go, in both encodings and for any text and values, and must be a
well-formed MIME body (7-bit, CRLF, lines within 76 and none starting with a dot,
no trailing whitespace in quoted-printable, whole base64 quanta on every line); a message built with it must
read back like one built from the text.
"""

from __future__ import annotations

import binascii
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from syndication.mail.body import BodyTemplate, EncodedBody, encode
from syndication.mail.message import build
from tests.test_mail_message import assert_like_stdlib, assert_well_formed, body_as_read, make, view

NAMES = ("DISPLAY_NAME", "PREFERENCES_URL", "UNSUBSCRIBE_URL")

# Text that exercises the seams: Vietnamese (2- and 3-byte UTF-8), "=", dots, spaces
# and tabs (trailing whitespace is encoded in quoted-printable), every line break.
shared_text = st.text(alphabet=st.sampled_from([*"aZ0 .=\t\r\nĐưởệ€<>\"'", "\u200c", "😀"]), max_size=300)
one_line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=120
)


def parts_of(texts: list[str], names: list[str]) -> list[str]:
    parts = [texts[0]]
    for name, text in zip(names, texts[1:], strict=True):
        parts += [name, text]
    return parts


def decoded(body: EncodedBody) -> bytes:
    if body.encoding == "base64":
        return binascii.a2b_base64(body.data)
    return binascii.a2b_qp(body.data)


def assert_well_formed_body(body: EncodedBody) -> None:
    assert body.data.isascii()
    assert body.data.endswith(b"\r\n") or body.data == b""
    lines = body.data.split(b"\r\n")[:-1]
    assert b"\n" not in body.data.replace(b"\r\n", b"")
    assert b"\r" not in body.data.replace(b"\r\n", b"")
    for line in lines:
        assert len(line) <= 76, line
        assert not line.startswith(b"."), line
        if body.encoding == "quoted-printable":
            assert not line.endswith((b" ", b"\t")), line
            assert re.fullmatch(rb"(?:[!-<>-~ \t]|=[0-9A-F]{2})*=?", line), line
        else:
            # Whole quanta on every line: even a decoder that reads line by line is right.
            assert len(line) % 4 == 0, line
            assert re.fullmatch(rb"[A-Za-z0-9+/]*={0,2}", line), line


def expected_bytes(parts: list[str], values: dict[str, str]) -> bytes:
    text = "".join(values[p] if i % 2 else p for i, p in enumerate(parts))
    return body_as_read(text).encode("utf-8")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(shared_text, min_size=1, max_size=5),
    values=st.lists(one_line, min_size=4, max_size=4),
    kind=st.sampled_from(["as drawn", "markup", "dense"]),
)
@example(texts=["x" * 75, "y" * 76, "z" * 74 + " "], values=["é" * 30, "a", "b", ""], kind="as drawn")
@example(texts=["", "", "."], values=["a", "bc", "", ""], kind="dense")
@example(texts=["Đ", "ư", "\r", "\n"], values=["a", "", "b", ""], kind="dense")
@example(texts=["a \r", "\n ", "\r"], values=["€", "x", "", ""], kind="markup")
@example(
    texts=[".", "." * 80, "x" * 75 + "..", "\n."], values=[".", ". .", "." * 74 + "é", "."], kind="as drawn"
)
def test_a_filled_template_decodes_like_the_whole_text(
    texts: list[str], values: list[str], kind: str
) -> None:
    names = [NAMES[i % 3] + str(i) for i in range(len(texts) - 1)]
    if kind == "dense":
        # Mostly Vietnamese: base64 is the shorter, most of the time.
        texts = [text + "Hội nghị Ban Chấp hành Đảng bộ " * 3 for text in texts]
    elif kind == "markup":
        # Mostly ASCII: quoted-printable, most of the time.
        texts = [text + "<p>Tin so 1: Hoi nghi Ban Chap hanh</p>" * 8 for text in texts]
    parts = parts_of(texts, names)
    template = BodyTemplate(parts)
    filled_values = dict(zip(names, values, strict=False))
    body = template.fill(filled_values)
    assert_well_formed_body(body)
    assert decoded(body) == expected_bytes(parts, filled_values)


def test_a_template_chooses_the_encoding_encode_chooses() -> None:
    markup = '<td style="padding:12px"><a href="%%URL%%">Xem tiếp</a></td>\n' * 20
    dense = "Hội nghị Ban Chấp hành Đảng bộ Khối các cơ quan tỉnh lần thứ mười hai\n" * 20
    for text in (markup, dense):
        parts = text.split("%%")
        template = BodyTemplate(parts if len(parts) % 2 else [text])
        assert template.encoding == encode(text).encoding
    assert encode(markup).encoding == "quoted-printable"
    assert encode(dense).encoding == "base64"


def test_a_template_without_holes_is_the_text_encoded() -> None:
    for text in ("", "Bản tin\n", "x" * 200, "Hội nghị Ban Chấp hành " * 30):
        body, whole = BodyTemplate([text]).fill({}), encode(text)
        assert body.encoding == whole.encoding
        assert decoded(body) == decoded(whole) == body_as_read(text).encode("utf-8")
        assert_well_formed_body(body)


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\r\nBcc: x@example.vn"])
def test_values_are_one_line(value: str) -> None:
    template = BodyTemplate(["Kính gửi ", "NAME", ",\n"])
    with pytest.raises(ValueError, match="one line"):
        template.fill({"NAME": value})


def test_every_hole_needs_a_value_and_parts_alternate() -> None:
    with pytest.raises(KeyError):
        BodyTemplate(["a", "NAME", "b"]).fill({})
    with pytest.raises(ValueError, match="parts"):
        BodyTemplate(["a", "NAME"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=one_line,
    url=st.from_regex(r"https://portal\.example\.vn/huy/[A-Za-z0-9_-]{0,80}", fullmatch=True),
    dense=st.booleans(),
)
def test_a_message_with_filled_bodies_reads_like_one_built_from_the_text(
    name: str, url: str, dense: bool
) -> None:
    filler = "Hội nghị Ban Chấp hành Đảng bộ Khối " if dense else '<p style="margin:0">Tin số 1</p> '
    html_parts = ["<p>Kính gửi ", "NAME", f',</p>\n{filler * 40}\n<a href="', "URL", '">Huỷ</a>\n']
    text_parts = ["Kính gửi ", "NAME", f",\n\n{filler * 40}\n\nHuỷ đăng ký:\n", "URL", ""]
    values = {"NAME": name, "URL": url}
    html = "".join(values[p] if i % 2 else p for i, p in enumerate(html_parts))
    text = "".join(values[p] if i % 2 else p for i, p in enumerate(text_parts))
    filled = make(html=BodyTemplate(html_parts).fill(values), text=BodyTemplate(text_parts).fill(values))
    raw = build(filled)
    assert_well_formed(raw)
    whole = make(html=html, text=text)
    assert view(raw) == view(build(whole))
    assert_like_stdlib(whole)
