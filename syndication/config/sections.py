"""Reading each table of the configuration file into its settings object.

One function per section (``[fetch]``, ``[mail]``, ``[[sources]]``...): each checks
every key of its table with the ``_Checker`` it is given, records every problem, and
returns settings with defaults where a value was bad, so that one run reports all
problems at once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from syndication.ingest.netguard import host_problem
from syndication.text import size_text
from syndication.types import DigestSpec, HtmlRules, SourceSpec

from .settings import (
    Category,
    FeedSettings,
    FetchSettings,
    MailSettings,
    RetentionSettings,
    ServerSettings,
    ServiceSettings,
    SubscribeSettings,
)
from .values import (
    _EMAIL,
    _SLUG,
    _SOURCE_ID,
    _Checker,
    _describe,
    _source_url,
    cron_problem,
    is_loopback,
    parse_duration,
    parse_keep,
    parse_size,
    resolve_path,
)

MIN_PARSE_TIMEOUT = timedelta(seconds=1)
MAX_PARSE_TIMEOUT = timedelta(hours=1)
MIN_PARSE_MEMORY = 256 * 1024**2
"""Below this a parse process has hardly room for more than the parsers themselves."""
MIN_CONTENT_HTML = 64 * 1024


def _fetch_settings(c: _Checker, t: Mapping[str, Any]) -> FetchSettings:
    d = FetchSettings()
    p = "fetch."
    c.unknown(
        t,
        p,
        {
            "user_agent",
            "timeout",
            "max_bytes",
            "max_redirects",
            "concurrency",
            "per_host",
            "backoff_cap",
            "max_lower_bound",
            "parse_workers",
            "parse_timeout",
            "parse_memory",
            "max_content_html",
        },
    )

    def count(name: str, default: int, low: int, high: int) -> int:
        value = c.get(t, p, name, int, default)
        if value is None:
            return default
        if not low <= value <= high:
            c.problem(p + name, f"must be between {low} and {high}, got {value}")
            return default
        return value

    def at_least(name: str, default: int, low: int) -> int:
        size = c.convert(t, p, name, parse_size, default)
        if size < low:
            c.problem(p + name, f"must be at least {size_text(low)}, got {size_text(size)}")
            return default
        return size

    parse_timeout = c.convert(t, p, "parse_timeout", parse_duration, timedelta(seconds=d.parse_timeout))
    if not MIN_PARSE_TIMEOUT <= parse_timeout <= MAX_PARSE_TIMEOUT:
        c.problem(p + "parse_timeout", f'must be between "1s" and "1h", got "{t["parse_timeout"]}"')
        parse_timeout = timedelta(seconds=d.parse_timeout)

    return FetchSettings(
        user_agent=c.get(t, p, "user_agent", str, d.user_agent) or d.user_agent,
        timeout=c.convert(t, p, "timeout", parse_duration, timedelta(seconds=d.timeout)).total_seconds(),
        max_bytes=c.convert(t, p, "max_bytes", parse_size, d.max_bytes),
        max_redirects=count("max_redirects", d.max_redirects, 0, 20),
        concurrency=count("concurrency", d.concurrency, 1, 256),
        per_host=count("per_host", d.per_host, 1, 64),
        backoff_cap=c.convert(t, p, "backoff_cap", parse_duration, d.backoff_cap),
        max_lower_bound=c.convert(t, p, "max_lower_bound", parse_duration, d.max_lower_bound),
        parse_workers=count("parse_workers", d.parse_workers, 0, 64),
        parse_timeout=parse_timeout.total_seconds(),
        parse_memory=at_least("parse_memory", d.parse_memory, MIN_PARSE_MEMORY),
        max_content_html=at_least("max_content_html", d.max_content_html, MIN_CONTENT_HTML),
    )


def _feed_settings(c: _Checker, t: Mapping[str, Any], websub: Mapping[str, Any]) -> FeedSettings:
    d = FeedSettings()
    p = "feeds."
    c.unknown(t, p, {"items", "ttl", "rights", "refresh", "cache_max_age"})
    items = c.get(t, p, "items", int, d.items)
    if items is None or not 1 <= items <= 1000:
        c.problem(p + "items", f"must be between 1 and 1000, got {items}")
        items = d.items
    c.unknown(websub, "websub.", {"hub"})
    hub = c.get(websub, "websub.", "hub", str)
    if hub is not None and urlsplit(hub).scheme not in ("http", "https"):
        c.problem("websub.hub", f'expected an http:// or https:// URL, got "{hub}"')
        hub = None
    elif hub is not None and (problem := host_problem(urlsplit(hub).hostname or "")):
        c.problem("websub.hub", problem)
        hub = None
    return FeedSettings(
        items=items,
        ttl=c.convert(t, p, "ttl", parse_duration, d.ttl),
        rights=c.get(t, p, "rights", str, "") or "",
        refresh=c.convert(t, p, "refresh", parse_duration, d.refresh),
        cache_max_age=c.convert(t, p, "cache_max_age", parse_duration, d.cache_max_age),
        websub_hub=hub,
    )


def _secret(c: _Checker, t: Mapping[str, Any], key: str, env: Mapping[str, str]) -> str | None:
    """A secret named by ``<key>_env``: the variable must be set when the key is given."""
    name = c.get(t, key.rsplit(".", 1)[0] + ".", key.rsplit(".", 1)[1] + "_env", str)
    if name is None:
        return None
    value = env.get(name)
    if not value:
        c.problem(f"{key}_env", f"environment variable {name} is not set")
        return None
    return value


_MAIL_KEYS = {
    "transport", "maildir", "from_address", "from_name", "reply_to", "host", "port", "security",
    "username", "password_env", "pool", "rate", "timeout", "retry_base", "retry_max", "max_attempts",
    "bounce_threshold", "lease", "unsubscribe_mailto", "dkim_selector", "dkim_domain", "dkim_key",
}  # fmt: skip


def _mail_settings(c: _Checker, t: Mapping[str, Any], base: Path, env: Mapping[str, str]) -> MailSettings:
    d = MailSettings()
    p = "mail."
    c.unknown(t, p, _MAIL_KEYS)
    transport = c.get(t, p, "transport", str, d.transport)
    if transport not in ("maildir", "smtp"):
        c.problem(p + "transport", f'expected "maildir" or "smtp", got "{transport}"')
        transport = d.transport
    security = c.get(t, p, "security", str, d.security)
    if security not in ("none", "starttls", "tls"):
        c.problem(p + "security", f'expected "none", "starttls" or "tls", got "{security}"')
        security = d.security
    addresses = {}
    for name in ("from_address", "reply_to", "unsubscribe_mailto"):
        value = c.get(t, p, name, str, getattr(d, name))
        if value is not None and not _EMAIL.match(value):
            c.problem(p + name, f'"{value}" is not an e-mail address')
        addresses[name] = value
    port = c.get(t, p, "port", int, d.port)
    if port is None or not 1 <= port <= 65535:
        c.problem(p + "port", f"must be between 1 and 65535, got {port}")
        port = d.port
    rate = c.get(t, p, "rate", (int, float), d.rate)
    if rate is None or rate < 0:
        c.problem(p + "rate", f"must be 0 (no limit) or more, got {rate}")
        rate = d.rate
    counts: dict[str, int] = {}
    for name, low, high in (("pool", 1, 64), ("max_attempts", 1, 100), ("bounce_threshold", 1, 100)):
        value = c.get(t, p, name, int, getattr(d, name))
        if value is None or not low <= value <= high:
            c.problem(p + name, f"must be between {low} and {high}, got {value}")
            value = getattr(d, name)
        counts[name] = value
    dkim = {name: c.get(t, p, name, str) for name in ("dkim_selector", "dkim_domain", "dkim_key")}
    if any(dkim.values()) and not all(dkim.values()):
        c.problem(p + "dkim_key", "DKIM needs dkim_selector, dkim_domain and dkim_key together")
    dkim_key = resolve_path(dkim["dkim_key"], base) if dkim["dkim_key"] else None
    if dkim_key is not None and not dkim_key.is_file():
        c.problem(p + "dkim_key", f"no such file: {dkim_key}")
    password = _secret(c, t, "mail.password", env)
    host = c.get(t, p, "host", str, d.host) or d.host
    username = c.get(t, p, "username", str)
    if username and security == "none" and not is_loopback(host):
        c.problem(
            p + "security",
            f'"none" with a username sends the SMTP password in clear to {host}: use "starttls" '
            '(port 587) or "tls" (port 465); "none" is only for a relay on this machine '
            '(host = "localhost", 127.0.0.1 or ::1)',
        )
    return MailSettings(
        transport="smtp" if transport == "smtp" else "maildir",
        maildir=resolve_path(c.get(t, p, "maildir", str, "../var/outbox") or "../var/outbox", base),
        from_address=addresses["from_address"] or d.from_address,
        from_name=c.get(t, p, "from_name", str, "") or "",
        reply_to=addresses["reply_to"],
        host=host,
        port=port,
        security="tls" if security == "tls" else "none" if security == "none" else "starttls",
        username=username,
        password=password,
        pool=counts["pool"],
        rate=float(rate),
        timeout=c.convert(t, p, "timeout", parse_duration, timedelta(seconds=d.timeout)).total_seconds(),
        retry_base=c.convert(t, p, "retry_base", parse_duration, d.retry_base),
        retry_max=c.convert(t, p, "retry_max", parse_duration, d.retry_max),
        max_attempts=counts["max_attempts"],
        bounce_threshold=counts["bounce_threshold"],
        lease=c.convert(t, p, "lease", parse_duration, d.lease),
        unsubscribe_mailto=addresses["unsubscribe_mailto"],
        dkim_selector=dkim["dkim_selector"],
        dkim_domain=dkim["dkim_domain"],
        dkim_key=dkim_key,
    )


_CONFIRM_EXPIRY = (timedelta(hours=1), timedelta(days=90))
"""Shortest and longest ``subscribe.confirm_expiry``: time to open the mail, not a standing link."""


def _subscribe_settings(c: _Checker, t: Mapping[str, Any], env: Mapping[str, str]) -> SubscribeSettings:
    d = SubscribeSettings()
    p = "subscribe."
    limit_names = ("per_client_per_hour", "per_address_per_day", "confirmations_per_hour")
    c.unknown(t, p, {"secret_env", "confirm_expiry", *limit_names})
    limits: dict[str, int] = {}
    for name in limit_names:
        value = c.get(t, p, name, int, getattr(d, name))
        if value is None or not 1 <= value <= 10000:
            c.problem(p + name, f"must be between 1 and 10000, got {value}")
            value = getattr(d, name)
        limits[name] = value
    expiry = c.convert(t, p, "confirm_expiry", parse_duration, d.confirm_expiry)
    low, high = _CONFIRM_EXPIRY
    if not low <= expiry <= high:
        c.problem(p + "confirm_expiry", f'must be between "1h" and "90d", got "{t["confirm_expiry"]}"')
        expiry = d.confirm_expiry
    return SubscribeSettings(secret=_secret(c, t, "subscribe.secret", env), confirm_expiry=expiry, **limits)


_DIGEST_KEYS = {"name", "title", "schedule", "subject", "max_items", "skip_empty", "period", "grace"}
_DIGEST_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def _digests(c: _Checker, items: object) -> tuple[DigestSpec, ...]:
    result: list[DigestSpec] = []
    seen: set[str] = set()
    for p, item in c.tables(items, "digests", _DIGEST_KEYS):
        name = c.get(item, p, "name", str, required=True)
        schedule = c.get(item, p, "schedule", str, required=True)
        if name is not None:
            if not _DIGEST_NAME.match(name):
                c.problem(p + "name", f'"{name}" must be lower-case letters, digits, "-" and "_"')
            elif name in seen:
                c.problem(p + "name", f'"{name}" is used by another digest')
            seen.add(name)
        if schedule is not None:
            problem = cron_problem(schedule)
            if problem:
                c.problem(p + "schedule", problem)
        max_items = c.get(item, p, "max_items", int, 50)
        if max_items is None or not 1 <= max_items <= 500:
            c.problem(p + "max_items", f"must be between 1 and 500, got {max_items}")
            max_items = 50
        subject = c.get(item, p, "subject", str, "{digest} – {site} – {date}") or "{digest} – {site} – {date}"
        try:
            subject.format(site="", digest="", date="", count=0)
        except (KeyError, IndexError, ValueError) as exc:
            c.problem(
                p + "subject",
                f"bad template {subject!r}: use {{site}}, {{digest}}, {{date}}, {{count}} ({exc})",
            )
        if name is None or schedule is None:
            continue
        result.append(
            DigestSpec(
                name=name,
                title=c.get(item, p, "title", str, "") or name,
                schedule=schedule,
                subject=subject,
                max_items=max_items,
                skip_empty=bool(c.get(item, p, "skip_empty", bool, True)),
                period=c.convert(item, p, "period", parse_duration, timedelta(days=1)),
                grace=c.convert(item, p, "grace", parse_duration, timedelta(hours=1)),
            )
        )
    return tuple(result)


def _service_settings(c: _Checker, t: Mapping[str, Any]) -> ServiceSettings:
    d = ServiceSettings()
    p = "service."
    c.unknown(t, p, {"workers", "tick", "poll_lease", "jitter", "stop_timeout"})
    jitter = float(c.get(t, p, "jitter", (int, float), d.jitter) or 0)
    if not 0 <= jitter <= 0.5:
        c.problem(p + "jitter", f"must be a fraction between 0 and 0.5, got {jitter}")
        jitter = d.jitter
    return ServiceSettings(
        workers=bool(c.get(t, p, "workers", bool, d.workers)),
        tick=c.convert(t, p, "tick", parse_duration, d.tick),
        poll_lease=c.convert(t, p, "poll_lease", parse_duration, d.poll_lease),
        jitter=jitter,
        stop_timeout=c.convert(t, p, "stop_timeout", parse_duration, d.stop_timeout),
    )


def _retention_settings(c: _Checker, t: Mapping[str, Any]) -> RetentionSettings:
    d = RetentionSettings()
    p = "retention."
    c.unknown(t, p, {"articles", "deliveries", "schedule"})
    schedule = c.get(t, p, "schedule", str, d.schedule) or d.schedule
    problem = cron_problem(schedule)
    if problem:
        c.problem(p + "schedule", problem)
        schedule = d.schedule
    articles = c.convert(t, p, "articles", parse_keep, d.articles)
    if articles is not None and articles < timedelta(days=1):
        c.problem(p + "articles", 'must be at least one day (or "forever")')
        articles = d.articles
    return RetentionSettings(
        articles=articles,
        deliveries=c.convert(t, p, "deliveries", parse_keep, d.deliveries),
        schedule=schedule,
    )


def _server_settings(c: _Checker, t: Mapping[str, Any]) -> ServerSettings:
    d = ServerSettings()
    p = "server."
    c.unknown(t, p, _SERVER_KEYS)

    def number(name: str, default: int | None, low: int, high: int) -> int | None:
        value = c.get(t, p, name, int, default)
        if value is not None and not low <= value <= high:
            c.problem(p + name, f"must be between {low} and {high}, got {value}")
            return default
        return value

    port = number("port", d.port, 1, 65535) or d.port
    admin_port = number("admin_port", None, 1, 65535)
    if admin_port is not None and admin_port == port:
        c.problem(p + "admin_port", f"must differ from server.port ({port})")
        admin_port = None
    timeout = c.convert(t, p, "request_timeout", parse_duration, d.request_timeout)
    if not timedelta(seconds=1) <= timeout <= timedelta(minutes=10):
        c.problem(p + "request_timeout", f'must be between "1s" and "10m", got "{t["request_timeout"]}"')
        timeout = d.request_timeout
    header_bytes = c.convert(t, p, "max_header_bytes", parse_size, d.max_header_bytes)
    if not 1024 <= header_bytes <= 1024 * 1024:
        c.problem(p + "max_header_bytes", f'must be between "1KiB" and "1MiB", got {t["max_header_bytes"]!r}')
        header_bytes = d.max_header_bytes
    header = (c.get(t, p, "proxy_header", str, d.proxy_header) or d.proxy_header).lower()
    if header not in ("x-forwarded-for", "forwarded"):
        c.problem(p + "proxy_header", f'expected "X-Forwarded-For" or "Forwarded", got "{t["proxy_header"]}"')
        header = d.proxy_header
    return ServerSettings(
        host=c.get(t, p, "host", str, d.host) or d.host,
        port=port,
        trusted_proxies=_trusted_proxies(c, t.get("trusted_proxies", []), p + "trusted_proxies"),
        proxy_header="forwarded" if header == "forwarded" else "x-forwarded-for",
        request_timeout=timeout,
        max_header_bytes=header_bytes,
        limit_concurrency=number("limit_concurrency", d.limit_concurrency, 1, 1_000_000)
        or d.limit_concurrency,
        admin_host=c.get(t, p, "admin_host", str, d.admin_host) or d.admin_host,
        admin_port=admin_port,
    )


_SERVER_KEYS = {
    "host", "port", "trusted_proxies", "proxy_header", "request_timeout", "max_header_bytes",
    "limit_concurrency", "admin_host", "admin_port",
}  # fmt: skip


def _trusted_proxies(c: _Checker, value: object, key: str) -> tuple[str, ...]:
    """Addresses and networks, each as ``ipaddress`` writes it; every bad entry is a problem."""
    if not isinstance(value, list):
        c.problem(
            key,
            f'expected a list such as ["10.0.0.0/8"], got {_describe(value)}',
        )
        return ()
    networks: list[str] = []
    for i, entry in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(entry, str):
            c.problem(where, f"expected an address or a network as a string, got {_describe(entry)}")
            continue
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            c.problem(where, f'"{entry}" is not an IP address or a network such as "10.0.0.0/8"')
            continue
        if network.prefixlen == 0:
            c.problem(where, f'"{entry}" trusts every address: clients could choose their own')
        elif "/" in entry and str(network) != entry.strip():
            c.problem(where, f'"{entry}" has host bits set: did you mean "{network}"?')
        else:
            networks.append(str(network))
    return tuple(networks)


def _categories(c: _Checker, items: object) -> tuple[Category, ...]:
    result: list[Category] = []
    seen: set[str] = set()
    for p, item in c.tables(items, "categories", {"slug", "title"}):
        slug = c.get(item, p, "slug", str, required=True)
        title = c.get(item, p, "title", str, required=True)
        if slug is None or title is None:
            continue
        if not _SLUG.match(slug):
            c.problem(
                p + "slug", f'"{slug}" must be lower-case letters, digits and dashes (e.g. "xay-dung-dang")'
            )
        elif slug in seen:
            c.problem(p + "slug", f'"{slug}" is used by another category')
        elif slug == "all" or slug.startswith("source-"):
            c.problem(p + "slug", f'"{slug}" is reserved for feed names ("all", "source-<id>")')
        seen.add(slug)
        result.append(Category(slug=slug, title=title.strip()))
    return tuple(result)


_SOURCE_KEYS = {"id", "url", "kind", "categories", "interval", "allow_private_network", "title", "html"}
_HTML_KEYS = {"links", "title", "lead", "body", "author", "date", "image", "remove", "max_articles"}


def _sources(c: _Checker, items: object, slugs: set[str], base: Path) -> tuple[SourceSpec, ...]:
    result: list[SourceSpec] = []
    seen: set[str] = set()
    for p, item in c.tables(items, "sources", _SOURCE_KEYS):
        source_id = c.get(item, p, "id", str, required=True)
        raw_url = c.get(item, p, "url", str, required=True)
        kind = c.get(item, p, "kind", str, "feed")
        if source_id is not None:
            if not _SOURCE_ID.match(source_id):
                c.problem(p + "id", f'"{source_id}" must be lower-case letters, digits, "-" and "_"')
            elif source_id in seen:
                c.problem(p + "id", f'"{source_id}" is used by another source')
            seen.add(source_id)
        if kind not in ("feed", "html"):
            c.problem(p + "kind", f'expected "feed" or "html", got "{kind}"')
            kind = "feed"
        url = ""
        if raw_url is not None:
            try:
                url = _source_url(raw_url, base)
            except ValueError as exc:
                c.problem(p + "url", str(exc))
        cats = c.get(item, p, "categories", list, [])
        cat_tuple: tuple[str, ...] = ()
        if cats is not None:
            for j, slug in enumerate(cats):
                if not isinstance(slug, str):
                    c.problem(f"{p}categories[{j}]", f"expected a category slug, got {_describe(slug)}")
                elif slug not in slugs:
                    known = ", ".join(sorted(slugs)) or "none defined"
                    c.problem(f"{p}categories[{j}]", f'unknown category "{slug}" (known: {known})')
            cat_tuple = tuple(dict.fromkeys(s for s in cats if isinstance(s, str)))
        interval = c.convert(item, p, "interval", parse_duration, timedelta(minutes=15))
        if interval < timedelta(minutes=1):
            c.problem(p + "interval", "must be at least 1m (be polite to the publisher)")
        html = _html_rules(c, item, p, kind)
        if source_id is None or raw_url is None:
            continue
        result.append(
            SourceSpec(
                id=source_id,
                url=url,
                kind="html" if kind == "html" else "feed",
                categories=cat_tuple,
                interval=interval,
                allow_private_network=bool(c.get(item, p, "allow_private_network", bool, False)),
                html=html,
                title=c.get(item, p, "title", str),
            )
        )
    return tuple(result)


def _html_rules(c: _Checker, item: Mapping[str, Any], p: str, kind: str | None) -> HtmlRules:
    if "html" not in item:
        return HtmlRules()
    t = c.table(item, p + "html")
    if kind != "html":
        c.problem(p + "html", 'selectors only apply to sources with kind = "html"')
    hp = p + "html."
    c.unknown(t, hp, _HTML_KEYS)
    selectors: dict[str, str | None] = {}
    for name in ("links", "title", "lead", "body", "author", "date", "image"):
        value = c.get(t, hp, name, str)
        if value is not None:
            _check_selector(c, hp + name, value)
        selectors[name] = value
    remove = c.get(t, hp, "remove", list, []) or []
    removes: list[str] = []
    for j, sel in enumerate(remove):
        if isinstance(sel, str):
            _check_selector(c, f"{hp}remove[{j}]", sel)
            removes.append(sel)
        else:
            c.problem(f"{hp}remove[{j}]", f"expected a CSS selector string, got {_describe(sel)}")
    max_articles = c.get(t, hp, "max_articles", int, 30)
    if max_articles is None or not 1 <= max_articles <= 500:
        c.problem(hp + "max_articles", f"must be between 1 and 500, got {max_articles}")
        max_articles = 30
    return HtmlRules(
        links=selectors["links"],
        title=selectors["title"],
        lead=selectors["lead"],
        body=selectors["body"],
        author=selectors["author"],
        date=selectors["date"],
        image=selectors["image"],
        remove=tuple(removes),
        max_articles=max_articles,
    )


def _check_selector(c: _Checker, key: str, selector: str) -> None:
    # cssselect is a dependency of the html parser; importing it here keeps the
    # error at load time, where it names the key, instead of at the first poll.
    from cssselect import GenericTranslator, SelectorError

    try:
        GenericTranslator().css_to_xpath(selector)
    except SelectorError as exc:
        c.problem(key, f'invalid CSS selector "{selector}": {exc}')
