"""No XML entity a source declares is ever expanded, wherever the declaration stands.

A document reaches feedparser only after ``parse_feed`` has dropped everything before
its root element (DOCTYPEs, comments, processing instructions, stray text) and
neutralised every other ``<!`` that is neither a comment nor a CDATA section. The
shapes below got past the old DOCTYPE stripping: feedparser's fallback parser then
expanded the "safe" entities it found without limit (a 22 KB feed became a
30,000,000-character article). The end-to-end check, through ``syndication fetch``
and ``feeds build``, is in ``test_hostile_sources.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syndication.errors import ParseError
from syndication.ingest.parse_feed import parse_feed
from syndication.ingest.xml_safety import prepare_xml
from syndication.types import ParsedDocument

SAIGON = ZoneInfo("Asia/Ho_Chi_Minh")
VALUE = "ZQ" * 500
"""What the hostile entity stands for: 1,000 characters, found by ``VALUE`` runs."""
REFS = "&zq;" * 300
"""300 references: expanded, 300,000 characters of ``VALUE``."""
DECL = f'<!ENTITY zq "{VALUE}">'
NETSCAPE = (
    '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"'
    ' "http://my.netscape.com/publish/formats/rss-0.91.dtd">'
)


def rss(description: str = f"Nội dung thật {REFS}", *, n: int = 1, extra: str = "", inside: str = "") -> str:
    """A feed of one article, "Bài viết số {n}" (distinct articles for distinct ``n``)."""
    return (
        f'<rss version="2.0">{inside}<channel><title>Kênh tin</title><link>https://p.example.vn/</link>'
        f"<item><title>Bài viết số {n}</title><link>https://p.example.vn/bai-{n}.html</link>"
        f"<description>{description}</description>{extra}</item></channel></rss>"
    )


def subset(*declarations: str, name: str = "DOCTYPE") -> str:
    """A DOCTYPE whose internal subset holds ``declarations``, each on its own line
    (where feedparser's own DOCTYPE rewriting looks for them)."""
    return f"<!{name} rss [\n" + "\n".join(declarations) + "\n]>\n"


SHAPES: dict[str, Callable[[int], bytes]] = {
    # Each gives the document of article number n.
    # The three shapes of the issue.
    "text before the DOCTYPE": lambda n: f"x\n{subset(DECL)}{rss(n=n)}".encode(),
    "a second DOCTYPE after a bare one": lambda n: f"{NETSCAPE}\n{subset(DECL)}{rss(n=n)}".encode(),
    "a DOCTYPE inside a comment": lambda n: f"<!--\n{subset(DECL)}-->\n{rss(n=n)}".encode(),
    # Variants.
    "a DOCTYPE after the XML declaration (well-formed)": lambda n: (
        f'<?xml version="1.0" encoding="utf-8"?>\n{subset(DECL)}{rss(n=n)}'.encode()
    ),
    "a byte order mark and text before the DOCTYPE": lambda n: f"\ufeffx\n{subset(DECL)}{rss(n=n)}".encode(),
    "UTF-16 with text before the DOCTYPE": lambda n: f"x\n{subset(DECL)}{rss(n=n)}".encode("utf-16"),
    "UTF-16 well-formed": lambda n: (
        f'<?xml version="1.0" encoding="utf-16"?>\n{subset(DECL)}{rss(n=n)}'.encode("utf-16")
    ),
    "an ENTITY outside any DOCTYPE": lambda n: f"x\n{DECL}\n<!DOCTYPE rss>\n{rss(n=n)}".encode(),
    "a lower-case doctype": lambda n: f"x\n{subset(DECL, name='doctype')}{rss(n=n)}".encode(),
    "a parameter entity declaring the entity": lambda n: (
        "x\n" + subset(f"<!ENTITY % pe \"<!ENTITY zq '{VALUE}'>\">", "%pe;") + rss(n=n)
    ).encode(),
    "nested entities": lambda n: (
        "x\n" + subset(f'<!ENTITY a "{VALUE}">', '<!ENTITY zq "&a;&a;&a;">') + rss(n=n)
    ).encode(),
    "an entity in an attribute": lambda n: (
        f"x\n{subset(DECL)}"
        + rss(n=n, extra=f'<enclosure url="https://p.example.vn/{REFS}.jpg" type="image/jpeg" length="1"/>')
    ).encode(),
    "a DOCTYPE inside a processing instruction": lambda n: f"<?x\n{subset(DECL)}?>\n{rss(n=n)}".encode(),
    "a DOCTYPE inside a CDATA section before the root": lambda n: (
        f"<![CDATA[\n{subset(DECL)}]]>\n{rss(n=n)}".encode()
    ),
    "a DOCTYPE inside CDATA in the document": lambda n: rss(
        f"<![CDATA[\n{subset(DECL)}]]>Nội dung thật {REFS}", n=n
    ).encode(),
    "a DOCTYPE after the root element's start": lambda n: rss(n=n, inside=f"\n{subset(DECL)}").encode(),
    "xml-stylesheet, text and two DOCTYPEs": lambda n: (
        '<?xml version="1.0"?>\n<?xml-stylesheet href="a.xsl"?>\nrác\n<!DOCTYPE rss>\n'
        + subset(DECL)
        + rss(n=n)
    ).encode(),
}


def parse(content: bytes) -> ParsedDocument:
    return parse_feed(content, url="https://p.example.vn/rss", declared_charset=None, tz=SAIGON)


def all_text(doc: ParsedDocument) -> str:
    return json.dumps([doc.title, [a.__repr__() for a in doc.articles]], ensure_ascii=False)


@pytest.mark.parametrize("shape", SHAPES)
def test_no_declared_entity_is_ever_expanded(shape: str) -> None:
    content = SHAPES[shape](1)

    doc = parse(content)

    text = all_text(doc)
    assert VALUE not in text or text.count(VALUE) <= content.decode("utf-8", "ignore").count(VALUE) * 3
    (article,) = doc.articles
    assert article.title == "Bài viết số 1"
    assert "Nội dung thật" in article.content_html
    assert len(article.content_html) < 20_000, len(article.content_html)
    assert VALUE not in article.content_html


@pytest.mark.parametrize("shape", SHAPES)
def test_feedparser_never_sees_an_entity_declaration(shape: str) -> None:
    prepared, _warnings = prepare_xml(parse_text(SHAPES[shape](1)))

    assert re.search(rb"<!\s*(?:doctype|entity)", prepared, re.IGNORECASE) is None


def parse_text(content: bytes) -> str:
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        return content.decode("utf-16")
    return content.decode("utf-8").lstrip("\ufeff")


def test_undefined_entities_stay_literal_text_and_the_document_parses_strictly() -> None:
    content = f'<?xml version="1.0"?>\n{subset(DECL)}{rss("Nội dung thật &zq; &z_q.1; &nbsp;x")}'.encode()

    doc = parse(content)

    (article,) = doc.articles
    assert article.summary == "Nội dung thật &zq; &z_q.1; x"  # (nbsp is a space)
    # Strictly parsed: no "malformed XML" warning, only the one about the DOCTYPE.
    assert doc.warnings == ("removed the DOCTYPE declaration (its entities are never expanded)",)


def test_a_bare_doctype_and_comments_before_the_root_go_silently() -> None:
    content = (
        f'<?xml version="1.0"?>\n<!-- Bản tin -->\n{NETSCAPE}\n<?xml-stylesheet href="x.xsl"?>\n{rss("Bài")}'
    )

    doc = parse(content.encode())

    assert doc.warnings == ()
    assert [a.title for a in doc.articles] == ["Bài viết số 1"]


def test_text_before_the_root_is_dropped_with_a_warning() -> None:
    doc = parse(f"Warning: PHP notice in feed.php\n{rss('Bài')}".encode())

    assert [a.title for a in doc.articles] == ["Bài viết số 1"]
    assert doc.warnings == ("ignored text before the root element",)


def test_declarations_inside_cdata_are_kept_as_text() -> None:
    html = "<![CDATA[<p>Mã nguồn: <code>&lt;!DOCTYPE html&gt;</code></p><!DOCTYPE html>]]>"

    doc = parse(rss(html).encode())

    (article,) = doc.articles
    assert "<code>&lt;!DOCTYPE html&gt;</code>" in article.content_html
    assert doc.warnings == ()


PIECES = [
    "x",
    "\n",
    " ",
    "<!--",
    "-->",
    "<?pi ",
    "?>",
    "<!DOCTYPE rss [",
    "<!doctype rss>",
    f'<!ENTITY zq "{VALUE}">',
    "<!ENTITY % pe '<!ENTITY zq \"ZQ\">'>",
    "%pe;",
    "]>",
    "]",
    ">",
    '"',
    "'",
    "<![CDATA[",
    "]]>",
    "<rss version='2.0'>",
    "<:x>",
    "<channel><item><title>T</title><description>",
    "</description></item></channel></rss>",
    "&zq;",
    "&zq;" * 20,
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join), st.booleans())
def test_any_arrangement_of_declarations_expands_nothing(document: str, bom: bool) -> None:
    prepared, _warnings = prepare_xml(document)
    assert re.search(rb"<!\s*(?:doctype|entity)", prepared, re.IGNORECASE) is None

    content = ("\ufeff" if bom else "") + document
    try:
        doc = parse(content.encode())
    except ParseError:  # not a feed at all: fine, nothing was expanded either
        return
    written = content.count(VALUE)
    assert all_text(doc).count(VALUE) <= 3 * written
