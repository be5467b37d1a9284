"""Render a digest (and the double opt-in confirmation) as an e-mail's subject, HTML and text.

Jinja2 templates from the site's ``templates/email/`` folder, autoescaped (HTML) and in
Vietnamese. Rendering is split in two so that it costs almost nothing per subscriber:

1. ``DigestRenderer.render`` runs once per distinct ``DigestContent`` (see
   ``select.content_key``): it fills the templates and inlines the CSS with css-inline,
   leaving markers (``%%DISPLAY_NAME%%``, ``%%PREFERENCES_URL%%``,
   ``%%UNSUBSCRIBE_URL%%``) where the personal parts go.
2. ``personalise`` puts one subscriber's name and links in place of the markers: no
   template, no parsing, no CSS, only joining strings that were split at render time.
   (A mailer can also take the split parts, ``Rendered.html_parts`` and
   ``text_parts``, and the values, ``personal_values``, and join them itself.)

Nothing from a source can reach a reader as markup or as a marker: only titles and
summaries as plain text (never ``content_html``), links only to absolute http(s)
addresses (images only https), and every ``%%`` in text from outside is broken with an
invisible word joiner (in URLs, the first ``%`` becomes ``%25``) before it reaches a
template, so the only markers are the template's own.

Dates are shown in the site's time zone; every ``datetime`` given is UTC (or aware).

Must not: build MIME messages or headers (``mail`` does), read the store, or read the clock.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import css_inline
import jinja2

from syndication.errors import ConfigError
from syndication.text import WEEKDAYS, clean_line, truncate, vietnamese_date
from syndication.types import Article, DigestContent

__all__ = [
    "DISPLAY_NAME",
    "PREFERENCES_URL",
    "TEMPLATES",
    "UNSUBSCRIBE_URL",
    "WEEKDAYS",
    "DigestRenderer",
    "Rendered",
    "personal_values",
    "personalise",
    "vietnamese_date",
    "vietnamese_duration",
]

DISPLAY_NAME: Final = "%%DISPLAY_NAME%%"
PREFERENCES_URL: Final = "%%PREFERENCES_URL%%"
UNSUBSCRIBE_URL: Final = "%%UNSUBSCRIBE_URL%%"
_MARKERS: Final = re.compile(r"%%(DISPLAY_NAME|PREFERENCES_URL|UNSUBSCRIBE_URL)%%")
_DOUBLE_PERCENT: Final = re.compile("%(?=%)")
_WORD_JOINER: Final = "\u2060"

TEMPLATES: Final = ("digest.html", "digest.txt", "confirm.html", "confirm.txt", "styles.css")
"""The templates under ``templates_dir/email/``, all loaded when the renderer is built."""

UNTITLED: Final = "(Không có tiêu đề)"
NO_NAME: Final = "quý bạn đọc"
"""Put in place of an empty display name ("Kính gửi quý bạn đọc,")."""
COMRADE: Final = "đồng chí"
"""Before a person's name in the party register ("Kính gửi đồng chí Nguyễn Văn An,")."""
CONFIRM_SUBJECT: Final = "Xác nhận đăng ký nhận bản tin – {site}"
EMPTY_NOTICE: Final = "Không có tin mới trong kỳ này."

RENDERED_KEPT: Final = 64
"""Rendered digests a renderer keeps for reuse (``DigestRenderer.render``)."""

WRAP_WIDTH: Final = 76
SUMMARY_LIMIT: Final = 400
"""Characters of a summary shown; the article itself is one click away."""
PREHEADER_LIMIT: Final = 140
# Inbox previews show the preheader and then whatever text follows it; this invisible
# padding (zero-width non-joiner, no-break space, combining grapheme joiner) keeps
# "Xem trên trình duyệt" and the header out of the preview.
_PREHEADER_PADDING: Final = "\u200c\u00a0\u034f" * 60

_SUBJECT_FIELDS: Final = re.compile(r"\{(site|digest|date|count)\}")
_UNSAFE_URL_CHARS: Final = re.compile(r"[\s\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendered:
    """A rendered e-mail: subject, HTML (CSS inlined) and plain text, possibly with markers."""

    subject: str
    html: str
    text: str
    _html_parts: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _text_parts: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Split once here so that ``personalise`` is one join per part: text, marker
        # name, text, marker name, ..., text.
        object.__setattr__(self, "_html_parts", tuple(_MARKERS.split(self.html)))
        object.__setattr__(self, "_text_parts", tuple(_MARKERS.split(self.text)))

    @property
    def html_parts(self) -> tuple[str, ...]:
        """The HTML split at its markers: text, marker name, text, ..., text."""
        return self._html_parts

    @property
    def text_parts(self) -> tuple[str, ...]:
        """The plain text split at its markers: text, marker name, text, ..., text."""
        return self._text_parts


def _fill(parts: tuple[str, ...], values: Mapping[str, str]) -> str:
    if len(parts) == 1:
        return parts[0]
    pieces = list(parts)
    for index in range(1, len(pieces), 2):
        pieces[index] = values[pieces[index]]
    return "".join(pieces)


def _personal_url(name: str, url: str) -> str:
    if not url.startswith(("https://", "http://")) or _UNSAFE_URL_CHARS.search(url):
        raise ValueError(f"{name} must be an absolute http(s) URL without spaces")
    return url


def personal_values(
    *, display_name: str, preferences_url: str, unsubscribe_url: str
) -> tuple[dict[str, str], dict[str, str]]:
    """What goes in place of each marker for one subscriber: ``(html, text)`` values by
    marker name (the parts of ``Rendered.html_parts`` and ``text_parts`` between texts).

    The text values are as given (an empty name becomes "quý bạn đọc"), the HTML
    values HTML-escaped; each is one line.

    Raises:
        ValueError: a URL is not an absolute http(s) address, or has spaces or controls.
    """
    name = clean_line(display_name, limit=200) or NO_NAME
    preferences = _personal_url("preferences_url", preferences_url)
    unsubscribe = _personal_url("unsubscribe_url", unsubscribe_url)
    text_values = {"DISPLAY_NAME": name, "PREFERENCES_URL": preferences, "UNSUBSCRIBE_URL": unsubscribe}
    html_values = {key: html.escape(value, quote=True) for key, value in text_values.items()}
    return html_values, text_values


def personalise(
    rendered: Rendered, *, display_name: str, preferences_url: str, unsubscribe_url: str
) -> tuple[str, str]:
    """``(html, text)`` of ``rendered`` for one subscriber: markers replaced by their values.

    The values (``personal_values``) are put in as they are in the text part and
    HTML-escaped in the HTML part; they are never read again as markers. An empty
    display name becomes a polite general form ("quý bạn đọc").

    Raises:
        ValueError: a URL is not an absolute http(s) address, or has spaces or controls.
    """
    html_values, text_values = personal_values(
        display_name=display_name, preferences_url=preferences_url, unsubscribe_url=unsubscribe_url
    )
    return _fill(rendered.html_parts, html_values), _fill(rendered.text_parts, text_values)


# --- values for the templates ---------------------------------------------------------


def _short_date(moment: datetime, zone: tzinfo) -> str:
    if moment.tzinfo is None:
        raise ValueError("a naive datetime cannot be shown in a time zone")
    return f"{moment.astimezone(zone):%d/%m/%Y}"


def vietnamese_duration(span: timedelta) -> str:
    """``7 ngày``, ``36 giờ``, ``90 phút``: the largest unit that divides ``span`` (at least a minute)."""
    minutes = max(1, int(span.total_seconds() // 60))
    for unit, size in (("ngày", 1440), ("giờ", 60)):
        if minutes % size == 0:
            return f"{minutes // size} {unit}"
    return f"{minutes} phút"


def _line(text: str, *, limit: int = 1000) -> str:
    """A one-line text from outside the templates, made safe to put beside markers."""
    return _DOUBLE_PERCENT.sub("%" + _WORD_JOINER, clean_line(text, limit=limit))


def _web_url(url: str | None, *, https_only: bool = False) -> str | None:
    """``url`` when it is an absolute http(s) address (https only for images), else ``None``."""
    if not url or _UNSAFE_URL_CHARS.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    schemes = ("https",) if https_only else ("https", "http")
    if parts.scheme.lower() not in schemes or not parts.hostname:
        return None
    # A literal "%" in a URL is "%25": repairing "%%" also keeps markers out.
    return _DOUBLE_PERCENT.sub("%25", url)


def _wrap(text: str) -> str:
    """Plain text wrapped at ``WRAP_WIDTH`` columns at spaces; a longer word (a URL) is never broken.

    Greedy, like ``textwrap.fill(break_long_words=False, break_on_hyphens=False)`` on
    one-line text, and several times faster: it runs over every title and summary.
    """
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        if not word:
            continue
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= WRAP_WIDTH:
            line = f"{line} {word}"
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return "\n".join(lines)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Item:
    title: str
    url: str | None
    category: str
    date: str
    summary: str
    image: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Section:
    title: str
    items: tuple[_Item, ...]


def _item(article: Article, category: str, zone: tzinfo) -> _Item:
    return _Item(
        title=_line(article.title) or UNTITLED,
        url=_web_url(article.url),
        category=category,
        date=vietnamese_date(article.published, zone),
        summary=_line(article.summary, limit=SUMMARY_LIMIT),
        image=_web_url(article.image_url, https_only=True),
    )


# --- the renderer ---------------------------------------------------------------------


class DigestRenderer:
    """Renders digests and confirmation e-mails for one site; build it once and reuse it.

    ``templates_dir`` is the site's templates folder (the e-mail templates are in its
    ``email/`` subfolder); ``site_url`` the site's public address; ``publisher`` the name
    shown in the footer; ``timezone`` an IANA name such as ``Asia/Ho_Chi_Minh``.

    Raises:
        ConfigError: a template is missing or is not valid Jinja2.
        ValueError: ``site_url`` is not an absolute http(s) address.
    """

    def __init__(
        self,
        *,
        templates_dir: Path,
        site_title: str,
        site_url: str,
        publisher: str,
        timezone: str,
    ) -> None:
        url = _web_url(site_url)
        if url is None:
            raise ValueError("site_url must be an absolute http(s) address")
        self.site_url = url
        self.site_title = _line(site_title)
        self.publisher = _line(publisher)
        self.zone = ZoneInfo(timezone)
        folder = templates_dir / "email"
        environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(folder),
            autoescape=jinja2.select_autoescape(["html"], default_for_string=False),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        environment.filters["wrap"] = _wrap
        try:
            self._templates = {name: environment.get_template(name) for name in TEMPLATES}
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(str(folder), [f"{exc.filename}:{exc.lineno}: {exc.message}"]) from exc
        except jinja2.TemplateNotFound as exc:
            raise ConfigError(str(folder), [f"{folder}/{exc.name}: e-mail template missing"]) from exc
        # @media rules cannot be inlined; they stay in a <style> element as a refinement
        # for the clients that read one. Everything else ends up in style attributes.
        self._inliner = css_inline.CSSInliner(
            keep_at_rules=True, load_remote_stylesheets=False, minify_css=True
        )
        self._rendered: dict[tuple[DigestContent, str], Rendered] = {}
        self._markers = {
            "display_name": DISPLAY_NAME,
            "preferences_url": PREFERENCES_URL,
            "unsubscribe_url": UNSUBSCRIBE_URL,
        }

    def subject(self, content: DigestContent) -> str:
        """The subject line: ``DigestSpec.subject`` with {site}, {digest}, {date} and {count}.

        Other braces are left as they are; the result is one line.
        """
        values = {
            "site": self.site_title,
            "digest": self._digest_title(content),
            "date": _short_date(content.window_end, self.zone),
            "count": str(content.count),
        }
        filled = _SUBJECT_FIELDS.sub(lambda match: values[match[1]], content.digest.subject)
        return clean_line(filled, limit=250)

    def render(self, content: DigestContent, *, archive_url: str) -> Rendered:
        """The digest for everyone who receives ``content``, with markers for the personal parts.

        ``archive_url`` is the digest's page on the web site ("Xem trên trình duyệt").
        The same content (``select.content_key``) and ``archive_url`` give the same bytes,
        so the latest results are kept (``RENDERED_KEPT``) and given again: a sender asks
        for the same few contents in every batch of an issue.

        Raises:
            ValueError: ``archive_url`` is not an absolute http(s) address.
        """
        key = (content, archive_url)
        rendered = self._rendered.get(key)
        if rendered is None:
            rendered = self._render(content, archive_url)
            if len(self._rendered) >= RENDERED_KEPT:
                del self._rendered[next(iter(self._rendered))]
            self._rendered[key] = rendered
        return rendered

    def _render(self, content: DigestContent, archive_url: str) -> Rendered:
        archive = _web_url(archive_url)
        if archive is None:
            raise ValueError("archive_url must be an absolute http(s) address")
        sections = tuple(
            _Section(
                title=_line(section.title),
                items=tuple(_item(article, _line(section.title), self.zone) for article in section.articles),
            )
            for section in content.sections
        )
        titles = [item.title for section in sections for item in section.items]
        subject = self.subject(content)
        context = {
            "subject": _line(subject),
            "site_title": self.site_title,
            "site_url": self.site_url,
            "publisher": self.publisher,
            "digest_title": _line(self._digest_title(content)),
            "date": vietnamese_date(content.window_end, self.zone),
            "count": content.count,
            "sections": sections,
            "archive_url": archive,
            "empty_notice": EMPTY_NOTICE,
            "preheader": truncate(" · ".join(titles), PREHEADER_LIMIT) if titles else EMPTY_NOTICE,
            "preheader_padding": _PREHEADER_PADDING,
            "markers": self._markers,
        }
        return Rendered(
            subject=subject,
            html=self._html("digest.html", context),
            text=self._templates["digest.txt"].render(context),
        )

    def render_confirmation(
        self,
        *,
        display_name: str,
        confirm_url: str,
        digest_title: str,
        valid_for: timedelta | None = None,
    ) -> Rendered:
        """The double opt-in e-mail: one link that activates the subscription.

        Personal from the start (no markers): it goes to one address. A person named
        is greeted in the party register ("Kính gửi đồng chí <name>,"), anyone else
        neutrally ("Kính gửi quý bạn đọc,"). ``valid_for``: how long the link works,
        said in the mail.

        Raises:
            ValueError: ``confirm_url`` is not an absolute http(s) address.
        """
        confirm = _web_url(confirm_url)
        if confirm is None:
            raise ValueError("confirm_url must be an absolute http(s) address")
        subject = clean_line(CONFIRM_SUBJECT.format(site=self.site_title), limit=250)
        name = _line(display_name, limit=200)
        context = {
            "subject": subject,
            "site_title": self.site_title,
            "site_url": self.site_url,
            "publisher": self.publisher,
            "greeting": f"{COMRADE} {name}" if name else NO_NAME,
            "digest_title": _line(digest_title),
            "confirm_url": confirm,
            "valid_for": vietnamese_duration(valid_for) if valid_for else "",
        }
        return Rendered(
            subject=subject,
            html=self._html("confirm.html", context),
            text=self._templates["confirm.txt"].render(context),
        )

    @staticmethod
    def personal_values(
        *, display_name: str, preferences_url: str, unsubscribe_url: str
    ) -> tuple[dict[str, str], dict[str, str]]:
        """The module's ``personal_values``, reachable from the renderer a caller holds."""
        return personal_values(
            display_name=display_name, preferences_url=preferences_url, unsubscribe_url=unsubscribe_url
        )

    @staticmethod
    def personalise(
        rendered: Rendered, *, display_name: str, preferences_url: str, unsubscribe_url: str
    ) -> tuple[str, str]:
        """The module's ``personalise``, reachable from the renderer a caller holds."""
        return personalise(
            rendered,
            display_name=display_name,
            preferences_url=preferences_url,
            unsubscribe_url=unsubscribe_url,
        )

    def _html(self, template: str, context: Mapping[str, object]) -> str:
        return self._inliner.inline(self._templates[template].render(context))

    @staticmethod
    def _digest_title(content: DigestContent) -> str:
        return content.digest.title or content.digest.name
