"""Make an XML document safe for feedparser: ``prepare_xml``.

feedparser parses with expat and, when that fails, with a loose sgmllib-based parser
that finds DOCTYPEs and ``<!ENTITY`` declarations with regular expressions (blind to
comments, CDATA and processing instructions) and expands the "safe" entities it finds
there without limit. So before feedparser sees a document:

* everything before the root element goes (the XML declaration, comments, processing
  instructions, every DOCTYPE with its internal subset, stray text), and a UTF-8 XML
  declaration takes its place (we decoded the bytes ourselves);
* no markup declaration is left after it either: every ``<!`` that opens neither a
  comment nor a CDATA section becomes text, and none is left inside those;
* named entity references become what XML reads without a DTD: HTML's as numeric
  references, undefined ones as literal text;
* author-like fields are capped (feedparser's author/email handling is quadratic in
  their length).

No entity a source declares is ever expanded, by either parser, whatever the document.

Pure: no I/O. Must not parse the document into a tree (that is feedparser's job, after
this) or expand anything.
"""

from __future__ import annotations

import html.entities
import re

AUTHOR_FIELD_LIMIT = 1000
"""Characters kept of an author-like element's text before feedparser sees it."""

_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_NAMED_ENTITY = re.compile(r"&([^\W\d][\w.:-]*);")
_UTF8_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>'
_NAME_START = re.compile(r"[^\W\d]|:")
"""What may follow ``<`` to start an element: a letter, ``_`` or ``:``."""
_DECLARES_ENTITIES = re.compile(r"<!ENTITY\b|<!DOCTYPE\b[^>\[]*\[", re.IGNORECASE)
_DECLARATION_OPENERS = re.compile(r"<!--.*?(?:-->|\Z)|<!\[CDATA\[.*?(?:\]\]>|\Z)|<!", re.DOTALL)
_AUTHOR_LIKE = re.compile(
    r"<(?:[A-Za-z_][\w.-]*:)?(?:author|name|email|creator|managingEditor|webMaster)\b[^<>]*(?<!/)>",
    re.IGNORECASE,
)


def _after(text: str, i: int, end: str) -> int:
    """Index just after the first ``end`` at or after ``text[i]``; ``len(text)`` without one."""
    found = text.find(end, i)
    return len(text) if found == -1 else found + len(end)


def _markup_declaration_end(text: str, i: int) -> int:
    """Index just after the markup declaration (``<!DOCTYPE ...>``, ``<!ENTITY ...>``) whose
    ``<!`` is at ``text[i]``: quoted strings, comments and processing instructions skipped,
    the brackets of an internal subset matched. ``len(text)`` when it never ends."""
    n = len(text)
    depth = 0
    i += 2
    while i < n:
        char = text[i]
        if char in "\"'":
            i = _after(text, i + 1, char)
        elif text.startswith("<!--", i):
            i = _after(text, i + 4, "-->")
        elif text.startswith("<?", i):
            i = _after(text, i + 2, "?>")
        elif char == "[":
            depth += 1
            i += 1
        elif char == "]":
            depth = max(depth - 1, 0)
            i += 1
        elif char == ">" and depth == 0:
            return i + 1
        else:
            i += 1
    return n


def _split_prolog(text: str) -> tuple[str, str, bool]:
    """``text`` cut where the root element's start tag begins: ``(prolog, rest, stray)``,
    ``stray`` telling whether the prolog holds text (or a stray ``<``) besides markup.
    The whole of ``text`` is prolog when it has no root element.

    The prolog is everything before the root: the XML declaration, comments, processing
    instructions, DOCTYPEs (internal subsets included, however many), and whatever text
    or stray markup a broken document has there.
    """
    n = len(text)
    i = 0
    stray = False
    while i < n:
        lt = text.find("<", i)
        stray = stray or bool(text[i : n if lt == -1 else lt].strip())
        if lt == -1:
            break
        if text.startswith("<?", lt):
            i = _after(text, lt + 2, "?>")
        elif text.startswith("<!--", lt):
            i = _after(text, lt + 4, "-->")
        elif text.startswith("<!", lt):
            i = _markup_declaration_end(text, lt)
        elif _NAME_START.match(text, lt + 1):
            return text[:lt], text[lt:], stray
        else:
            stray = True
            i = lt + 1
    return text, "", stray


def _neutralise_declarations(text: str) -> tuple[str, int]:
    """``text`` with no markup declaration left anywhere, and how many there were outside
    comments and CDATA sections.

    Every ``<!`` that opens neither a comment nor a CDATA section becomes the text
    ``&lt;!``. Inside a comment ``<!`` becomes ``&lt;!`` (a comment means nothing);
    inside a CDATA section the section is split there (``<]]><![CDATA[!``: the same
    characters). So whatever a parser takes for a comment or a CDATA section,
    ``<!DOCTYPE`` and ``<!ENTITY`` are nowhere: feedparser's fallback parser looks for
    them with regular expressions that know neither.
    """
    if "<!" not in text:
        return text, 0
    outside = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal outside
        token = match.group(0)
        if token.startswith("<!--"):
            return "<!--" + token[4:].replace("<!", "&lt;!")
        if token.startswith("<![CDATA["):
            return "<![CDATA[" + token[9:].replace("<!", "<]]><![CDATA[!")
        outside += 1
        return "&lt;!"

    return _DECLARATION_OPENERS.sub(replace, text), outside


def _entity_references(text: str) -> str:
    """Named entity references XML can read without a DTD: HTML's (``&nbsp;``) as
    numeric references, any other name but XML's five as literal text (``&amp;zq;``):
    no declaration of it is left, and an undefined one would make the document
    unreadable for the strict parser."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _XML_ENTITIES:
            return match.group(0)
        codepoint = html.entities.name2codepoint.get(name)
        return f"&amp;{name};" if codepoint is None else f"&#{codepoint};"

    return _NAMED_ENTITY.sub(replace, text) if "&" in text else text


def _element_text_end(text: str, i: int) -> int:
    """End of the text, CDATA sections and comments that follow ``text[i]`` up to the next tag."""
    n = len(text)
    while i < n:
        if text.startswith("<![CDATA[", i):
            i = _after(text, i + 9, "]]>")
        elif text.startswith("<!--", i):
            i = _after(text, i + 4, "-->")
        elif text[i] == "<":
            return i
        else:
            end = text.find("<", i)
            i = n if end == -1 else end
    return n


def _capped_xml_text(raw: str, limit: int) -> str:
    """Text, CDATA and comments of an element as escaped character data, capped at ``limit``."""
    pieces: list[str] = []
    for part in re.split(r"(<!\[CDATA\[.*?(?:\]\]>|$)|<!--.*?(?:-->|$))", raw, flags=re.DOTALL):
        if part.startswith("<![CDATA["):
            body = part[9:].removesuffix("]]>")
            pieces.append(body.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
        elif not part.startswith("<!--"):
            pieces.append(part)
    capped = "".join(pieces)[:limit]
    amp = capped.rfind("&")
    if amp != -1 and ";" not in capped[amp:]:
        capped = capped[:amp]  # never leave half an entity reference
    return capped


def _cap_author_fields(text: str, limit: int = AUTHOR_FIELD_LIMIT) -> tuple[str, bool]:
    """Truncate the text of author-like elements longer than ``limit``. Linear in ``text``."""
    pieces: list[str] = []
    pos = 0
    for match in _AUTHOR_LIKE.finditer(text):
        start = match.end()
        if start <= pos:
            continue  # inside a field already rewritten
        end = _element_text_end(text, start)
        if end - start > limit:
            pieces.append(text[pos:start])
            pieces.append(_capped_xml_text(text[start:end], limit))
            pos = end
    if not pieces:
        return text, False
    pieces.append(text[pos:])
    return "".join(pieces), True


def prepare_xml(text: str) -> tuple[bytes, list[str]]:
    """The document as UTF-8 bytes feedparser can parse safely, and what was changed.

    Everything before the root element goes (DOCTYPEs with their entity declarations
    first of all), a UTF-8 XML declaration takes its place, and no markup declaration
    is left anywhere after it: no entity a source declares is ever expanded, by the
    strict parser or by feedparser's fallback one.
    """
    warnings: list[str] = []
    prolog, text, stray = _split_prolog(text)
    if _DECLARES_ENTITIES.search(prolog):
        # A bare DOCTYPE (RSS 0.91's Netscape DTD) is common and harmless: removing it
        # loses nothing, so it is not worth a warning on every poll. An internal subset
        # can define entities, which we never expand: that the publisher should hear of.
        warnings.append("removed the DOCTYPE declaration (its entities are never expanded)")
    if stray:
        warnings.append("ignored text before the root element")
    text, declarations = _neutralise_declarations(text)
    if declarations:
        warnings.append(f"ignored {declarations} markup declaration(s) (<!...) inside the document")
    text = _entity_references(text)
    text, capped = _cap_author_fields(text)
    if capped:
        warnings.append(f"truncated author fields longer than {AUTHOR_FIELD_LIMIT} characters")
    # The prolog's line breaks stay, so that a parser's "line 12" is the source's line 12.
    text = _UTF8_DECLARATION + "\n" * prolog.count("\n") + text
    return text.encode("utf-8", errors="replace"), warnings
