"""Portal pages that have no feed: article links from a listing page, one article from its page.

Extraction rules are data, in the manner of miniflux's scraper rules. A source's
``HtmlRules`` selectors come first; where one is ``None`` the built-in defaults below
apply (``TITLE_SELECTORS``, ``LEAD_SELECTORS`` ...), and the body falls back to
trafilatura. Whatever selects the body, the built-in removal rules run before it is
kept: ``REMOVE_SELECTORS`` (page furniture, forms, share buttons, comments, other-news
boxes) plus the source's ``rules.remove``, and ``END_MARKERS``: a block whose first text
is a heading such as "Các tin khác" is removed together with what follows it.

Pure: no I/O, no clock, no network (lxml's HTML parser loads no DTD and no external
entity). Top-level functions over plain, picklable arguments, so a worker process can
run them. Nothing here imports another component.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from typing import Any, cast
from urllib.parse import parse_qsl, urldefrag, urlencode, urljoin, urlsplit, urlunsplit

import lxml.html
from lxml import etree
from lxml.cssselect import CSSSelector, SelectorError

from syndication.errors import ParseError
from syndication.ingest.netguard import file_problem
from syndication.ingest.normalize import (
    absolute_url,
    decode_document,
    html_to_text,
    limit_tree,
    parse_date,
    sanitize_html,
)
from syndication.text import clean_line, nfc
from syndication.types import ArticleData, HtmlRules

__all__ = [
    "AUTHOR_SELECTORS",
    "DATE_SELECTORS",
    "END_MARKERS",
    "IMAGE_SELECTORS",
    "LEAD_SELECTORS",
    "LINK_NOISE_SELECTORS",
    "REMOVE_SELECTORS",
    "extract_links",
    "parse_article_page",
    "selector_problem",
]

_El = etree._Element

MAX_PAGE_ELEMENTS = 50_000
"""A page with more elements is refused: a portal's article or listing page has a few
thousand, and extracting an article's text (trafilatura) takes time quadratic in their
number (24,000 took 16 s). ``fetch.parse_timeout`` bounds what is left."""

# --- Rules as data ---------------------------------------------------------------------------

REMOVE_SELECTORS: tuple[str, ...] = (
    # Page furniture: navigation, menus, breadcrumbs, paging.
    "nav", "header", "footer", "aside", "menu",
    "[role=navigation]", "[role=banner]", "[role=contentinfo]", "[role=complementary]",
    "#header", "#footer", "#menu", ".header", ".footer", ".menu", ".navbar", ".topmenu",
    "#banner", ".banner", "[id*=banner]", ".dautrang", ".chantrang", "#dautrang", "#chantrang",
    ".breadcrumb", ".breadcrumbs", ".pagination", ".pager", ".paging",
    # Forms and widgets: search boxes, the "Xem các tin đã đưa ngày" date picker, players.
    "form", "button", "input", "select", "textarea", "label",
    "iframe", "frame", "object", "embed", "audio", "video", "canvas", "svg",
    # Share, print and e-mail buttons.
    ".share", ".shares", ".social", ".social-share", ".sharing", ".addthis_toolbox",
    ".print", ".tools", ".toolbar", ".article-tools", ".chia-se",
    # Comments.
    "#comments", ".comments", ".comment", ".comment-box", ".fb-comments", ".binh-luan", ".ykien",
    # Other news: "Các tin khác", "Tin liên quan", "Tin cùng chuyên mục".
    ".other-news", ".tin-khac", ".tinkhac", ".related", ".related-news", ".related-posts",
    ".tin-lien-quan", ".tinlienquan", ".same-category", ".tin-cung-chuyen-muc",
    ".xem-theo-ngay", ".tags", ".tag-list",
)  # fmt: skip
"""Removed before the body is kept. An element holding the page's main text is never removed
(an ASP.NET page wraps everything in one ``<form>``): it is unwrapped instead."""

END_MARKERS: tuple[str, ...] = (
    "Các tin khác",
    "Tin khác",
    "Các tin đã đưa",
    "Tin liên quan",
    "Bài viết liên quan",
    "Tin bài liên quan",
    "Bài liên quan",
    "Tin cùng chuyên mục",
    "Xem các tin đã đưa ngày",
    "Xem tin theo ngày",
    "Ý kiến bạn đọc",
)
"""Block headings that end an article. The block they start is removed with everything after
it: inside the ``rules.body`` container at every level, else among the block's siblings.
Compared ignoring case, spacing and punctuation ("CÁC TIN KHÁC:" matches); a marker before
the title heading is ignored."""

SITE_NAME_PREFIXES: tuple[str, ...] = (
    "Cổng thông tin điện tử", "Cổng thông tin", "Cổng TTĐT", "Cổng TT-ĐT", "Cổng TTDT",
    "Trang thông tin điện tử", "Trang thông tin", "Trang TTĐT", "Trang tin điện tử", "Trang tin",
    "Báo điện tử", "Tạp chí điện tử", "Website", "Portal",
)  # fmt: skip
"""How a portal's name begins: such a part of a page's ``<title>`` ("… - Cổng TTĐT Đảng bộ
tỉnh") is the site's name, not the article's title. Compared ignoring case and punctuation."""
TITLE_SELECTORS: tuple[str, ...] = (
    "meta[property='og:title']",
    "meta[name='twitter:title']",
    "h1",
    "title",
)
LEAD_SELECTORS: tuple[str, ...] = (
    ".sapo", ".lead", ".summary", ".description", ".tomtat", ".chapeau", ".article-summary",
    ".sapo-detail", ".news-sapo", ".excerpt", "[itemprop=description]",
    "meta[name=description]", "meta[property='og:description']",
)  # fmt: skip
AUTHOR_SELECTORS: tuple[str, ...] = (
    ".author", "[rel=author]", "[itemprop=author]", ".tacgia", ".tac-gia", ".author-name",
    ".post-author", ".article-author", ".news-author", ".byline",
)  # fmt: skip
AUTHOR_META_SELECTORS: tuple[str, ...] = ("meta[name=author]", "meta[property='article:author']")
DATE_SELECTORS: tuple[str, ...] = (
    "time[datetime]", "meta[property='article:published_time']", "meta[itemprop=datePublished]",
    "[itemprop=datePublished]", "meta[name=pubdate]", "meta[name=publishdate]",
    ".date", ".time", ".post-date", ".publish-date", ".published", ".datetime", ".news-date",
    ".article-date", ".ngaydang", ".ngay-dang", ".thoigian", ".post-meta",
)  # fmt: skip
UPDATED_SELECTORS: tuple[str, ...] = (
    "meta[property='article:modified_time']",
    "meta[itemprop=dateModified]",
    "[itemprop=dateModified]",
)
IMAGE_SELECTORS: tuple[str, ...] = (
    "meta[property='og:image']",
    "meta[name='twitter:image']",
    "link[rel=image_src]",
)
LINK_NOISE_SELECTORS: tuple[str, ...] = (
    "nav", "header", "footer", "menu", "[role=navigation]", "[role=banner]", "[role=contentinfo]",
    "#header", "#footer", "#menu", ".header", ".footer", ".menu", ".navbar", ".topmenu",
    "[id*=menu]", "[class*=menu]", ".breadcrumb", ".breadcrumbs", "[class*=breadcrumb]",
    ".pagination", ".pager", ".paging", "[class*=paging]", ".tags", ".tag-list",
    "aside", "[role=complementary]", "[class*=sidebar]", "[id*=sidebar]",
)  # fmt: skip
"""On a listing page, regions whose links are not this category's articles: navigation,
paging, sidebars ("Tin đọc nhiều" belongs to no category). Kept anyway: a ``header`` or
``footer`` inside an ``<article>`` (an item's headline), and a region holding most of the
page's remaining links (a layout wrapper whose class merely mentions "menu")."""

_DROP_TAGS = ("script", "style", "noscript", "template")
_LAZY_SRC = ("data-src", "data-original", "data-lazy-src", "data-echo", "data-url")
_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt", "figcaption",
    "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
    "ol", "p", "pre", "section", "table", "tbody", "td", "th", "tr", "ul",
})  # fmt: skip
_HEADINGS = frozenset({"h1", "h2", "h3", "h4"})
_NOT_ARTICLE_EXT = frozenset({
    "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "zip", "rar", "7z", "jpg", "jpeg", "png",
    "gif", "webp", "svg", "mp3", "mp4", "avi", "mov", "rss", "xml",
})  # fmt: skip
_PAGE_EXT = frozenset({"html", "htm", "shtml", "aspx", "asp", "php", "jsp"})
_CATEGORY_KEYS = frozenset({
    "tabid", "catid", "cat", "cid", "category", "categoryid", "chuyenmuc", "cm", "menuid", "mid",
})  # fmt: skip
"""Query keys (and path segments before a number) naming a category, not an article."""
_ITEM_KEYS = frozenset({
    "id", "itemid", "newsid", "articleid", "postid", "tinid", "baivietid", "nid", "aid", "entryid",
})  # fmt: skip
"""Query keys (and path segments before a number) naming one article: ASP.NET's ``?ItemID=7``,
DNN's ``/ArticleId/1234/``. Any number after them is an article's, however short."""
_PAGING_KEYS = frozenset({"page", "trang", "pageindex", "pagenumber", "pg", "paged", "start", "offset"})
_PAGING_WORDS = frozenset(
    {"«", "»", "‹", "›", "<", ">", "<<", ">>", "…", "...", "tiếp", "sau", "trước", "đầu", "cuối",
     "trang sau", "trang trước", "trang đầu", "trang cuối", "next", "prev", "previous", "first", "last"}
)  # fmt: skip
_PAGING_PATH = re.compile(r"(?:^|/)(?:page|trang|p)[-/]?\d{1,4}(?:\.html?)?/?$", re.IGNORECASE)
_DIGITS = re.compile(r"\d{3,}")
_NUMBER = re.compile(r"\d+")
_WORD = re.compile(r"\w+")
_NON_WORD = re.compile(r"[\W_]+")
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_DATE_DMY = re.compile(r"(?<!\d)(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{4})(?!\d)")
_TIME_HM = re.compile(r"(?<!\d)([01]?\d|2[0-3])\s*[:hg]\s*([0-5]\d)(?!\d)", re.IGNORECASE)
_RIGHT = re.compile(r"text-align\s*:\s*right", re.IGNORECASE)
_AUTHOR_PREFIX = re.compile(
    r"^(?:tác giả|người viết|bài(?:,| và)? ảnh|tin(?:,| và)? ảnh|bài|tin|theo|by|nguồn)\s*[:：-]?\s+",
    re.IGNORECASE,
)
_TRACKING = re.compile(r"utm_[a-z]+|fbclid|gclid|zarsrc", re.IGNORECASE)
"""Query parameters that only track a click: dropped from links so one article has one URL."""
_PARENTHESIS = re.compile(r"\s*\([^()]*\)\s*$")
_TITLE_SEPARATORS = (" - ", " – ", " — ", " | ", " :: ", " » ")


# --- Public API ------------------------------------------------------------------------------


def selector_problem(selector: str) -> str | None:
    """Why ``selector`` is not a CSS selector we can use, or ``None`` when it is fine."""
    try:
        _compile(selector)
    except SelectorError as exc:
        return f"invalid CSS selector {selector!r}: {exc}"
    return None


def extract_links(
    content: bytes | str, *, url: str, declared_charset: str | None, rules: HtmlRules
) -> tuple[str, ...]:
    """Article links of a listing (category) page: absolute, without fragment, de-duplicated,
    in page order, at most ``rules.max_articles``.

    With ``rules.links`` the selected ``<a>`` elements (or the links inside the selected
    containers) are taken as they are. Otherwise links inside ``<article>`` or headings with
    a title-like text, or any link whose path looks like an article's, on the same site,
    outside navigation, menus, breadcrumbs and paging.

    Raises:
        ParseError: the content is not an HTML document, or a selector is invalid.
    """
    _check_rules(rules, url)
    root, base = _load(content, url=url, declared_charset=declared_charset)
    page = _canonical(url) or url
    found: list[str] = []
    if rules.links:
        for el in _select(root, rules.links):
            anchors = [el] if el.tag == "a" else list(el.iter("a"))
            for a in anchors:
                link = _resolve(a.get("href"), base)
                if link and (link.startswith(("http:", "https:")) or _same_site(link, page)):
                    found.append(link)
    else:
        body = _body(root)
        for el in _matches(body, LINK_NOISE_SELECTORS):
            if not _attached(el, body) or any(anc.tag == "article" for anc in el.iterancestors()):
                continue
            if sum(1 for _ in el.iter("a")) <= sum(1 for _ in body.iter("a")) / 2:
                _drop(el)
        candidates = list(_links(body, base))
        accepted = _repeated_items(candidates, page)
        found = [link for a, link in candidates if link in accepted or _is_article_link(a, link, page)]
    seen: set[str] = set()
    links: list[str] = []
    for link in found:
        if link not in seen and link != page:
            seen.add(link)
            links.append(link)
    return tuple(links[: max(rules.max_articles, 0)])


def parse_article_page(
    content: bytes | str, *, url: str, declared_charset: str | None, rules: HtmlRules, tz: tzinfo
) -> ArticleData:
    """One article from its portal page: title, lead (sapo), sanitised body, author, date, image.

    Naive dates on the page are in ``tz``. The body never holds navigation, the other-news
    blocks, the date picker, share buttons or comments, nor the title, lead or author line.

    Raises:
        ParseError: the content is not an HTML document, a selector is invalid, or the page
            has neither a title nor a body.
    """
    _check_rules(rules, url)
    root, base = _load(content, url=url, declared_charset=declared_charset)
    _absolutize(root, base)
    body_root = _body(root)

    site_name = _meta(root, "meta[property='og:site_name']")
    title, title_el = _find_title(root, rules, site_name)
    containers = _outermost(_select(root, rules.body)) if rules.body else []

    # 1. End markers ("Các tin khác" ...) and what follows them: never metadata, never body.
    before_title = _preceding(root, title_el)
    for container in containers:
        _remove_end_blocks(container, deep=True, skip=before_title)
    # Outside a container, the densest text survives a marker block in front of it.
    _remove_end_blocks(body_root, deep=False, skip=before_title, keep=containers or [_text_anchor(body_root)])

    # 2. Metadata, from what remains.
    lead, lead_el = _find_lead(root, rules)
    # A configured selector comes first; when it matches nothing (the portal changed its
    # template), the defaults still find what they can.
    published, date_el = _find_date(root, _first(rules.date, DATE_SELECTORS), tz)
    if published is None and title_el is not None:
        published, date_el = _date_after(title_el, tz)
    updated, _ = _find_date(root, UPDATED_SELECTORS, tz)
    author, author_el = _find_author(root, _first(rules.author, AUTHOR_SELECTORS))
    image = _first_value(root, _first(rules.image, IMAGE_SELECTORS), ("content", "href", "src", *_LAZY_SRC))

    # 3. Removal rules; the element holding the text (and its ancestors) survive, unwrapped.
    anchor = containers[0] if containers else _text_anchor(body_root)
    article_root = _common_ancestor(title_el, anchor) if title_el is not None else body_root
    keep: set[_El] = set()
    for el in containers or [anchor]:
        keep.add(el)
        keep.update(el.iterancestors())
    for el in _matches(body_root, REMOVE_SELECTORS):
        if el in keep:
            el.tag = "div"  # a layout wrapper (ASP.NET's page-wide <form>): keep what it holds
        elif _attached(el, body_root):
            _drop(el)
    for el in _matches(body_root, rules.remove):
        if _attached(el, body_root):
            _drop(el)

    if not author:
        # The byline closes the text, or the article (a table row of its own on old portals).
        scopes = containers or [anchor] + ([article_root] if article_root is not body_root else [])
        author, author_el = _author_line(scopes)
    if not author:
        meta_author = _clean_author(_first_value(root, AUTHOR_META_SELECTORS, ("content",)) or "")
        author = "" if meta_author.startswith(("http:", "https:")) else meta_author
    if title_el is not None and not containers:
        _drop_lines_above(article_root, title_el)
    for found in (title_el, lead_el, date_el, author_el):
        if found is not None and len(_text(found)) <= 2000:
            _drop(found)

    # 4. The body: the configured containers, else trafilatura, else the densest block.
    if containers:
        fragment = "".join(_html(el) for el in containers)
    else:
        fragment = _extract(article_root) or _html(anchor)
    body_html = _finish_body(fragment, drop_texts=(title, lead, author), base=base)

    if not title and not html_to_text(body_html).strip():
        raise ParseError("page has neither a title nor a body", url=url)
    page_url = _page_url(_resolve(_first_value(root, ("link[rel=canonical]",), ("href",)), base), url)
    tags = _meta(root, "meta[property='article:section']")
    return ArticleData(
        guid=None,
        url=page_url,
        title=title,
        summary=lead,
        content_html=body_html,
        author=author,
        published=published,
        updated=updated,
        image_url=absolute_url(image, base_url=base) if image else _first_image(body_html),
        tags=(tags,) if tags else (),
    )


# --- Loading and selecting -------------------------------------------------------------------


def _load(content: bytes | str, *, url: str, declared_charset: str | None) -> tuple[_El, str]:
    """Decode (unless ``decode_document`` did already: ``content`` is text) and parse a page;
    return its root element and the base URL of its links."""
    text = content if isinstance(content, str) else decode_document(content, declared=declared_charset)[0]
    text = _XML_DECL.sub("", text, count=1)
    if not text.strip():
        raise ParseError("empty HTML document", url=url)
    parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, no_network=True, recover=True)
    try:
        root = etree.fromstring(text, parser=parser)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError) as exc:
        raise ParseError(f"not an HTML document: {exc}", url=url) from exc
    if root is None:
        raise ParseError("not an HTML document", url=url)
    # libxml2 stops at depth 256 by itself; below that, nesting is capped at
    # normalize.MAX_DEPTH like every fragment, and the size of the tree is capped too.
    if int(root.xpath("count(//*)")) > MAX_PAGE_ELEMENTS:  # type: ignore[arg-type]
        raise ParseError(f"the page has more than {MAX_PAGE_ELEMENTS} elements", url=url)
    limit_tree(root)
    for el in list(root.iter(*_DROP_TAGS)):
        _drop(el)
    for img in root.iter("img"):
        # Lazy-loading pages keep the real picture in data-src behind a placeholder.
        lazy = next((img.get(a) for a in _LAZY_SRC if img.get(a)), None)
        src = img.get("src") or ""
        if lazy and (not src or src.startswith("data:") or "placeholder" in src or src.endswith(".gif")):
            img.set("src", lazy)
    return root, _base_url(root, url)


def _base_url(root: _El, url: str) -> str:
    """What the page's relative links resolve against: its ``<base href>`` (itself resolved
    against the page URL, fragment dropped) when that is http(s), else the page URL. An
    offline copy read from a ``file:`` URL may also have a relative ``file:`` base."""
    base_el = root.find(".//base[@href]")
    if base_el is None:
        return url
    try:
        base = urldefrag(urljoin(url, (base_el.get("href") or "").strip())).url
        parts = urlsplit(base)
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if (scheme in ("http", "https") and parts.hostname) or (scheme == "file" == urlsplit(url).scheme):
        return base
    return url


def _absolutize(root: _El, base: str) -> None:
    """Make every link and image URL absolute against the page's base, query and fragment
    kept. Done before extraction: what happens later (trafilatura resolves against the site
    root; a fragment leaves the page) must not see a relative URL."""
    for tag, attr in (("a", "href"), ("img", "src")):
        for el in root.iter(tag):
            value = (el.get(attr) or "").strip()
            if value:
                try:
                    el.set(attr, urljoin(base, value))
                except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 literal): left to sanitising
                    continue


def _check_rules(rules: HtmlRules, url: str) -> None:
    selectors = (rules.links, rules.title, rules.lead, rules.body, rules.author, rules.date, rules.image)
    for selector in (*selectors, *rules.remove):
        if selector is not None and (problem := selector_problem(selector)):
            raise ParseError(problem, url=url)


@functools.lru_cache(maxsize=512)
def _compile(selector: str) -> CSSSelector:
    return CSSSelector(selector, translator="html")


def _select(root: _El, selector: str) -> list[_El]:
    found = _compile(selector)(root)
    return [el for el in found if isinstance(el, etree._Element)] if isinstance(found, list) else []


def _matches(root: _El, selectors: Iterable[str]) -> list[_El]:
    """Elements below ``root`` matching any selector, in document order."""
    hits: set[_El] = set()
    for selector in selectors:
        hits.update(el for el in _select(root, selector) if el is not root)
    return [el for el in root.iter() if el in hits]


def _outermost(elements: list[_El]) -> list[_El]:
    chosen = set(elements)
    return [el for el in elements if not any(anc in chosen for anc in el.iterancestors())]


def _first(rule: str | None, defaults: tuple[str, ...]) -> tuple[str, ...]:
    """The configured selector, then the built-in ones."""
    return (rule, *defaults) if rule else defaults


def _body(root: _El) -> _El:
    body = root.find("body")
    return body if body is not None else root


def _drop(el: _El) -> None:
    """Remove an element, keeping the text that follows it."""
    parent = el.getparent()
    if parent is None:
        return
    if el.tail:
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + el.tail
        else:
            parent.text = (parent.text or "") + el.tail
    parent.remove(el)


def _strings(el: _El) -> Iterator[str]:
    """The text nodes inside ``el``, in document order."""
    for text in el.itertext():
        yield text if isinstance(text, str) else text.decode()


def _raw_text(el: _El) -> str:
    return "".join(_strings(el))


def _text(el: _El) -> str:
    return clean_line(_raw_text(el), limit=100_000)


def _html(el: _El) -> str:
    return etree.tostring(el, encoding="unicode", method="html", with_tail=False)


def _key(text: str) -> str:
    """Comparison key: NFC, case-folded, punctuation and spacing collapsed."""
    return _NON_WORD.sub(" ", nfc(text).casefold()).strip()


def _value(el: _El, attrs: Iterable[str]) -> str:
    for attr in attrs:
        value = el.get(attr)
        if value and value.strip():
            return value.strip()
    return "" if el.tag in ("meta", "link") else _text(el)


def _first_value(root: _El, selectors: Iterable[str], attrs: Iterable[str]) -> str | None:
    for selector in selectors:
        for el in _select(root, selector):
            if value := _value(el, attrs):
                return value
    return None


def _meta(root: _El, selector: str) -> str:
    return clean_line(_first_value(root, (selector,), ("content",)) or "")


# --- Metadata --------------------------------------------------------------------------------


def _find_title(root: _El, rules: HtmlRules, site_name: str) -> tuple[str, _El | None]:
    """The title and the element showing it on the page (to keep it out of the body)."""
    title = ""
    if rules.title:
        title = clean_line(_first_value(root, (rules.title,), ("content",)) or "")
    for selector in () if title else TITLE_SELECTORS:
        for el in _select(root, selector):
            value = clean_line(_value(el, ("content",)))
            if value and not (el.tag == "h1" and _in_furniture(el)) and _key(value) != _key(site_name):
                title = value
                break
        if title:
            break
    title = _strip_site_name(title, site_name, root)
    return title, _shown(root, title)


def _shown(root: _El, text: str) -> _El | None:
    """The element showing ``text`` as its whole text (a heading, else an element whose own
    text it is), outside the page furniture."""
    want = _key(text)
    if not want:
        return None
    for el in root.iter("h1", "h2", "h3"):
        if _key(_text(el)) == want and not _in_furniture(el):
            return el
    for el in root.iter("div", "p", "span", "td", "strong", "b", "font"):
        # Only an element whose own text is the title: cheap, and never a page-wide wrapper.
        if el.text and _key(el.text) == want and _key(_text(el)) == want and not _in_furniture(el):
            return el
    return None


def _strip_site_name(title: str, site_name: str, root: _El) -> str:
    """The title without the portal's name before or after it ("… - Cổng TTĐT tỉnh X").

    The name is the page's ``og:site_name``; without one, a part is the portal's name when
    it says so (``SITE_NAME_PREFIXES``) or when the page shows the other part alone as its
    heading. A title the page shows whole keeps its separators ("Kinh tế - Xã hội")."""
    site = _key(site_name)
    if _shown(root, title) is not None:
        return title
    for sep in _TITLE_SEPARATORS:
        if sep not in title:
            continue
        head, _, tail = title.rpartition(sep)  # "Title - Site"
        first, _, rest = title.partition(sep)  # "Site - Title"
        for keep, name in ((head, tail), (rest, first)):
            if not keep.strip():
                continue
            if (site and _key(name) == site) or _names_site(name) or _shown(root, keep) is not None:
                return keep.strip()
    return title


def _names_site(text: str) -> bool:
    key = _key(text)
    return any(key == prefix or key.startswith(prefix + " ") for prefix in _site_name_keys())


@functools.cache
def _site_name_keys() -> tuple[str, ...]:
    return tuple(_key(prefix) for prefix in SITE_NAME_PREFIXES)


def _find_lead(root: _El, rules: HtmlRules) -> tuple[str, _El | None]:
    for selector in _first(rules.lead, LEAD_SELECTORS):
        for el in _select(root, selector):
            if el.tag == "meta":
                text = html_to_text(el.get("content") or "")
            elif _in_furniture(el) or len(_text(el)) > 2000:
                continue
            else:
                text = html_to_text(_html(el))
            if len(text) >= 20 or (selector == rules.lead and text):
                return text, None if el.tag == "meta" else el
    return "", None


def _find_date(root: _El, selectors: Iterable[str], tz: tzinfo) -> tuple[datetime | None, _El | None]:
    for selector in selectors:
        for el in _select(root, selector):
            if el.tag != "meta" and _in_furniture(el):
                continue
            value = _value(el, ("datetime", "content"))
            if len(value) <= 200 and (when := _parse_when(value, tz)):
                return when, None if el.tag == "meta" else el
    return None, None


def _date_after(title_el: _El, tz: tzinfo) -> tuple[datetime | None, _El | None]:
    """A date line shortly after the title, whatever its class or layout ("dd/mm/yyyy" in
    it): a sibling of the heading, or the next row of a layout table. Looks at the first
    few elements with text that follow the title; stops where the article's text starts."""
    texts = 0
    following = title_el.xpath("following::*")
    for el in following if isinstance(following, list) else ():
        if not isinstance(el, etree._Element) or not isinstance(el.tag, str):
            continue
        own = ((el.text or "") + "".join(child.tail or "" for child in el)).strip()
        if own:
            texts += 1
            if texts > 6 or len(own) > 200:
                break
        text = _text(el)
        short_date = len(text) <= 120 and _DATE_DMY.search(text) and not _in_furniture(el)
        if short_date and (when := _parse_when(text, tz)):
            return when, el
    return None, None


def _parse_when(text: str, tz: tzinfo) -> datetime | None:
    """A date as portals write it; falls back to the first "dd/mm/yyyy [HH:MM]" in the text."""
    if when := parse_date(text, tz=tz):
        return when
    day = _DATE_DMY.search(text)
    if not day:
        return None
    hm = _TIME_HM.search(text)
    d, m, y = (int(g) for g in day.groups())
    hour, minute = (int(hm.group(1)), int(hm.group(2))) if hm else (0, 0)
    try:
        local = datetime(y, m, d, hour, minute, tzinfo=tz)
    except ValueError:
        return None
    return local.astimezone(UTC)


def _find_author(root: _El, selectors: Iterable[str]) -> tuple[str, _El | None]:
    for selector in selectors:
        for el in _select(root, selector):
            if el.tag != "meta" and (_in_furniture(el) or len(_text(el)) > 200):
                continue
            if author := _clean_author(_value(el, ("content",))):
                return author, None if el.tag == "meta" else el
    return "", None


def _clean_author(text: str) -> str:
    # Plain text like every author: markup written into a byline or a meta tag goes.
    text = clean_line(html_to_text(text, limit=400), limit=200).strip(" -–—()[]:")
    text = _AUTHOR_PREFIX.sub("", text)
    return re.sub(r"\s*\((?:tổng hợp|th|st|sưu tầm)\)\s*$", "", text, flags=re.IGNORECASE).strip(" -–—")


def _author_line(scopes: list[_El]) -> tuple[str, _El | None]:
    """The byline portals put last in the body: a short right-aligned or bold-only name."""
    for scope in scopes:
        seen = 0
        for el in reversed(list(_leaf_blocks(scope))):
            text = _text(el)
            if not text:
                continue
            seen += 1
            if seen > 3:
                break
            name = _clean_author(_PARENTHESIS.sub("", text))  # "Lê Chung (Văn phòng)"
            if (_right_aligned(el) or _bold_only(el)) and _looks_like_name(name):
                return name, el
    return "", None


def _leaf_blocks(scope: _El) -> Iterator[_El]:
    for el in scope.iter("p", "div", "td", "h5", "h6"):
        if not any(child.tag in _BLOCK_TAGS for child in el.iterdescendants()):
            yield el


def _right_aligned(el: _El) -> bool:
    for node in (el, *el.iterdescendants()):
        if (node.get("align") or "").lower() == "right" or _RIGHT.search(node.get("style") or ""):
            return True
        if {"text-right", "right", "author"} & set((node.get("class") or "").split()):
            return True
    return False


def _bold_only(el: _El) -> bool:
    bolds = [
        b for b in el.iter("strong", "b") if not any(a.tag in ("strong", "b") for a in b.iterancestors())
    ]
    bold = "".join(_raw_text(b) for b in bolds)
    return bool(bold.strip()) and _key(bold) == _key(_raw_text(el))


def _looks_like_name(text: str) -> bool:
    """A person (or an office) as a byline: 1-6 capitalised words, no digits, no sentence."""
    words = [w for w in re.split(r"[\s,&]+|\s[-–]\s", text) if w and w.lower() != "và"]
    return (
        0 < len(text) <= 60
        and 0 < len(words) <= 6
        and not any(ch.isdigit() for ch in text)
        and all(w[0].isupper() and all(c.isalpha() or c in ".-" for c in w) for w in words)
    )


def _in_furniture(el: _El) -> bool:
    """Inside a page header, navigation or footer (an ``<article>``'s own header excepted)."""
    for node in (el, *el.iterancestors()):
        if node.tag in ("nav", "footer", "menu") or (
            node.tag == "header" and not any(a.tag == "article" for a in node.iterancestors())
        ):
            return True
        names = {*(node.get("class") or "").lower().split(), (node.get("id") or "").lower()}
        if names & {"header", "footer", "menu", "topmenu", "navbar", "banner", "top-banner"}:
            return True
    return False


# --- Removal ---------------------------------------------------------------------------------


@functools.cache
def _marker_keys() -> frozenset[str]:
    return frozenset(_key(m) for m in END_MARKERS)


def _first_text(el: _El) -> str:
    return next((t for t in _strings(el) if t.strip()), "")


def _preceding(root: _El, target: _El | None) -> set[_El]:
    """Elements before ``target`` in document order (its ancestors included)."""
    before: set[_El] = set()
    if target is None:
        return before
    for el in root.iter():
        if el is target:
            return before
        before.add(el)
    return set()


def _remove_end_blocks(scope: _El, *, deep: bool, skip: set[_El], keep: Iterable[_El] = ()) -> None:
    """Remove each block that starts with an end marker, and what follows it.

    The block is the outermost element starting with the marker text that holds no ``<h1>``.
    Then its following siblings go too: at every level up to ``scope`` when ``deep`` (a
    configured body container), else at the block's own level, stopping at a sibling that
    holds an ``<h1>``, an ``<article>`` or one of ``keep``. Markers in ``skip`` are ignored.
    """
    kept = list(keep)
    markers = _marker_keys()
    owners = []
    nodes = scope.xpath(".//text()")
    for node in nodes if isinstance(nodes, list) else ():
        if not isinstance(node, str) or len(node.strip()) > 80 or _key(node) not in markers:
            continue
        text_node = cast(Any, node)  # lxml's smart string: knows its element and whether it is a tail
        owner = text_node.getparent() if text_node.is_text else text_node.getparent().getparent()
        if owner is not None and owner not in skip:
            owners.append(owner)
    for owner in owners:
        if not _attached(owner, scope):
            continue
        first = _first_text(owner)
        if _key(first) not in markers:
            continue
        block = owner
        while (
            (parent := block.getparent()) is not None
            and parent is not scope
            and parent.tag not in ("body", "html", "article", "main")
            and _first_text(parent) == first
            and parent.find(".//h1") is None
        ):
            block = parent
        doomed = [block]
        level = block
        while level is not scope and (parent := level.getparent()) is not None:
            for sibling in level.itersiblings():
                if not deep and (
                    sibling.tag in ("article", "h1")
                    or sibling.find(".//h1") is not None
                    or any(_attached(el, sibling) for el in kept)
                ):
                    break
                doomed.append(sibling)
            if not deep:
                break
            level = parent
        for el in doomed:
            _drop(el)


def _attached(el: _El, scope: _El) -> bool:
    return el is scope or any(anc is scope for anc in el.iterancestors())


def _text_anchor(scope: _El) -> _El:
    """The element holding the most paragraph text: where the article body is."""
    scores: dict[_El, int] = {}
    for el in scope.iter("p", "div", "td", "pre", "blockquote"):
        if el.tag in ("p", "pre", "blockquote"):
            size, holder = len(_text(el)), el.getparent()
        else:
            own = (el.text or "") + "".join(child.tail or "" for child in el)
            size, holder = len(own.strip()), el
        if holder is not None and size >= 25:
            scores[holder] = scores.get(holder, 0) + size
    return max(scores, key=lambda el: scores[el]) if scores else scope


# --- Body ------------------------------------------------------------------------------------


def _drop_lines_above(article_root: _El, title_el: _El) -> None:
    """Short lines without a picture above the title, inside the article: the category's
    name, a breadcrumb (an old portal's layout table holds them in rows above the title)."""
    above = _preceding(article_root, title_el) - {article_root, *title_el.iterancestors()}
    for el in [el for el in above if el.getparent() not in above]:
        if _attached(el, article_root) and len(_text(el)) <= 120 and el.find(".//img") is None:
            _drop(el)


def _common_ancestor(a: _El, b: _El) -> _El:
    """The innermost element holding both: from the title to the text, the article itself,
    without the page layout around it (old portals lay pages out in one big table)."""
    above_a = {a, *a.iterancestors()}
    return next((el for el in (b, *b.iterancestors()) if el in above_a), b)


def _extract(article_root: _El) -> str | None:
    """The main text of an article, as HTML with links and images (trafilatura)."""
    source = copy.deepcopy(article_root)
    # trafilatura drops <figure> with its caption; as plain blocks both survive.
    for el in source.iter("figure", "figcaption"):
        el.tag = "div" if el.tag == "figure" else "p"
    page = _html(source)
    if source.tag == "body":
        page = f"<html>{page}</html>"
    elif source.tag != "html":
        page = f"<html><body>{page}</body></html>"
    # Imported here: it is large, and only portals without a body selector need it.
    import trafilatura

    extracted = trafilatura.extract(
        page,
        url=None,  # links are absolute already; given a URL, it resolves them against the site root
        output_format="html",
        include_images=True,
        include_links=True,
        include_tables=True,
        include_comments=False,
        include_formatting=True,
        favor_precision=True,
        deduplicate=False,
    )
    return extracted if isinstance(extracted, str) and extracted.strip() else None


def _finish_body(fragment: str, *, drop_texts: Iterable[str], base: str) -> str:
    """Drop blocks repeating the title, lead or author, then normalise and sanitise."""
    if not fragment.strip():
        return ""
    parser = lxml.html.HTMLParser(remove_comments=True, no_network=True, recover=True)
    doc = etree.fromstring(f"<html><body><div>{fragment}</div></body></html>", parser=parser)
    holder = doc.find("body/div") if doc is not None else None
    if holder is None:
        return ""
    unwanted = {_key(t) for t in drop_texts if t.strip()}
    for el in list(holder.iter()):
        if el is holder or not _attached(el, holder):
            continue
        if el.tag in _BLOCK_TAGS and el.find(".//img") is None and _key(_raw_text(el)) in unwanted:
            _drop(el)
    _unwrap_layout_tables(holder)
    for el in holder.iter():
        # Indentation between blocks is not content.
        if el.tag in _BLOCK_TAGS and el.text is not None and not el.text.strip():
            el.text = None
        if el.tail is not None and not el.tail.strip():
            parent = el.getparent()
            if el.getnext() is None and parent is not None and parent.tag in _BLOCK_TAGS:
                el.tail = None
            elif el.tag in _BLOCK_TAGS or el.tag in ("img", "br"):
                el.tail = "\n"
    inner = (holder.text or "") + "".join(
        etree.tostring(c, encoding="unicode", method="html") for c in holder
    )
    return sanitize_html(inner, base_url=base)


def _unwrap_layout_tables(holder: _El) -> None:
    """A table of one column without headers lays a page out (old portals put the article in
    one): its cells become plain blocks. Tables of data keep their rows and columns."""
    for table in list(holder.iter("table")):
        rows = [row for row in table.iter("tr") if _owner_table(row) is table]
        if not rows or table.find(".//th") is not None or table.find(".//caption") is not None:
            continue
        cells = [[cell for cell in row if cell.tag in ("td", "th")] for row in rows]
        if any(len(row_cells) != 1 for row_cells in cells):
            continue
        replacement = etree.Element("div")
        for (cell,) in cells:
            cell.tag = "div"
            for name in list(cell.attrib):
                del cell.attrib[name]
            replacement.append(cell)
        replacement.tail = table.tail
        parent = table.getparent()
        if parent is not None:
            parent.replace(table, replacement)


def _owner_table(row: _El) -> _El | None:
    return next((anc for anc in row.iterancestors() if anc.tag == "table"), None)


def _first_image(body_html: str) -> str | None:
    if "<img" not in body_html:
        return None
    doc = etree.fromstring(f"<html><body>{body_html}</body></html>", parser=etree.HTMLParser())
    for img in doc.iter("img") if doc is not None else ():
        if src := absolute_url(img.get("src"), base_url=None):
            return src
    return None


# --- Links -----------------------------------------------------------------------------------


def _links(scope: _El, base: str) -> Iterator[tuple[_El, str]]:
    for a in scope.iter("a"):
        if link := _resolve(a.get("href"), base):
            yield a, link


def _resolve(href: str | None, base: str) -> str | None:
    """``href`` made absolute against ``base``, canonical; ``None`` unless http(s) or file."""
    if not href or not href.strip() or href.strip().startswith("#"):
        return None
    try:
        return _canonical(urljoin(base, href.strip()))
    except ValueError:
        return None


def _canonical(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "file") or (scheme != "file" and not parts.hostname):
        return None
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(_TRACKING.fullmatch(key) for key, _ in pairs):
        query = urlencode([(key, value) for key, value in pairs if not _TRACKING.fullmatch(key)])
    return urlunsplit((scheme, parts.netloc.lower(), parts.path or "/", query, ""))


def _page_url(canonical: str | None, url: str) -> str:
    """The canonical link when it is on the page's own site, else the page's URL. A page read
    from a ``file:`` URL is an offline copy: its http(s) canonical link is the public one."""
    if canonical and _same_site(canonical, url):
        return canonical
    if canonical and url.startswith("file:") and canonical.startswith(("http:", "https:")):
        return canonical
    return url


def _site(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme == "file":
        return "file", parts.path.rsplit("/", 1)[0] + "/"
    host = (parts.hostname or "").lower()
    return "web", host.removeprefix("www.")


def _same_site(link: str, page: str) -> bool:
    """Same host (``www.`` and http/https aside); for ``file:`` the page's directory tree,
    decoded and normalised as ``fetch`` reads it (``%2e%2e/`` leads out, not down)."""
    kind, where = _site(page)
    link_kind, link_where = _site(link)
    if kind == "file":
        return link_kind == "file" and file_problem(link, listing=page) is None
    return link_kind == "web" and link_where == where


def _is_article_link(a: _El, link: str, page: str) -> bool:
    if not _same_site(link, page) or _paging(a, link):
        return False
    if _article_path(link):
        return True
    text = _text(a) or clean_line(a.get("title") or "")
    headline = a.tag in _HEADINGS or any(
        anc.tag in _HEADINGS or anc.tag == "article" for anc in a.iterancestors()
    )
    return headline and len(_WORD.findall(text)) >= 5 and _extension(link) not in _NOT_ARTICLE_EXT


def _extension(link: str) -> str:
    last = urlsplit(link).path.rsplit("/", 1)[-1]
    return last.rsplit(".", 1)[-1].lower() if "." in last else ""


def _article_path(link: str) -> bool:
    """A path that names one article: a numeric id, or a long title slug ending in .html."""
    parts = urlsplit(link)
    ext = _extension(link)
    if ext in _NOT_ARTICLE_EXT:
        return False
    segments = [s for s in parts.path.split("/") if s]
    for i, segment in enumerate(segments):
        before = segments[i - 1].lower() if i else ""
        if (before in _ITEM_KEYS and segment.isdigit()) or (
            _DIGITS.search(segment) and before not in _CATEGORY_KEYS
        ):
            return True
    for key, value in parse_qsl(parts.query):
        if (key.lower() in _ITEM_KEYS and value.isdigit()) or (
            key.lower() not in _CATEGORY_KEYS | _PAGING_KEYS and _DIGITS.search(value)
        ):
            return True
    slug = segments[-1].rsplit(".", 1)[0] if segments else ""
    return ext in _PAGE_EXT and len([w for w in re.split(r"[-_]+", slug) if w]) >= 5


def _paging(a: _El, link: str) -> bool:
    text = _text(a).casefold()
    if text.isdigit() or text in _PAGING_WORDS or any(w in text for w in ("trang sau", "trang trước")):
        return True
    parts = urlsplit(link)
    if any(key.lower() in _PAGING_KEYS for key, _ in parse_qsl(parts.query)):
        return True
    # "p2.html" is the second page of a list, or an article named with a short slug: its
    # text tells ("2" or a headline).
    return bool(_PAGING_PATH.search(parts.path)) and not _headline_text(a)


def _headline_text(a: _El) -> bool:
    """A link text that reads like an article's title (five words or more)."""
    return len(_WORD.findall(_text(a) or clean_line(a.get("title") or ""))) >= 5


def _repeated_items(candidates: list[tuple[_El, str]], page: str) -> set[str]:
    """Links to articles whose URLs say little by themselves (``p1.html``, ``p2.html``): two
    or more headline links of one shape (the same URL but for its numbers) in one listing."""
    groups: dict[str, set[str]] = {}
    for a, link in candidates:
        if not _same_site(link, page) or _extension(link) in _NOT_ARTICLE_EXT or _paging(a, link):
            continue
        if _headline_text(a) and (shape := _shape(link)):
            groups.setdefault(shape, set()).add(link)
    return {link for links in groups.values() if len(links) >= 2 for link in links}


def _shape(link: str) -> str | None:
    """The link with each number replaced by ``#`` (numbers naming a category kept: a menu's
    links to categories differ in them); ``None`` when no number varies."""
    parts = urlsplit(link)
    segments = parts.path.lower().split("/")
    shaped = [
        segment if i and segments[i - 1] in _CATEGORY_KEYS else _NUMBER.sub("#", segment)
        for i, segment in enumerate(segments)
    ]
    query = [
        f"{key.lower()}={value if key.lower() in _CATEGORY_KEYS else _NUMBER.sub('#', value)}"
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    shape = "/".join(shaped) + "?" + "&".join(query)
    return shape if "#" in shape else None
