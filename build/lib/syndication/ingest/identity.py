"""Keys of a parsed article: who it is (identity), what it says (title/body/search keys)
and whether it changed (content hash).

Pure: no I/O. ``keys_for`` is a top-level function of picklable values, so it can run
in a worker process right after parsing.

Identity rule, first that applies:

1. ``guid:<guid>`` when the source's guid is an absolute http(s) URL or a ``tag:`` URI:
   such a guid names the article everywhere, so two sources carrying it share one article;
2. ``guid:<source_id>:<guid>`` for any other guid, which is only unique within its source;
3. ``url:<canonical link>`` (lower-case scheme and host, no default port, no fragment,
   no ``utm_*`` parameters);
4. ``hash:<sha256>`` of the title and body keys.

Identities longer than ``MAX_IDENTITY_BYTES`` keep their prefix and replace the rest by
its sha256, so that a unique index can hold them.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit, urlunsplit

from syndication.ingest.normalize import markup_text
from syndication.text import nfc, search_key, tone_key, truncate
from syndication.types import ArticleData, ArticleKeys

BODY_TEXT_LIMIT = 200_000
"""Characters of body text the body and search keys are made from."""
MAX_IDENTITY_BYTES = 1000
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def _is_global_guid(guid: str) -> bool:
    if guid[:4].lower() == "tag:":
        return len(guid) > 4
    try:
        parts = urlsplit(guid)
    except ValueError:
        return False
    return parts.scheme.lower() in _DEFAULT_PORTS and bool(parts.netloc)


def canonical_url(url: str) -> str:
    """``url`` with a lower-case scheme and host, no default port, no fragment and no
    ``utm_*`` query parameters; other parameters keep their order and spelling."""
    url = nfc(url).strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    netloc = parts.netloc.rpartition("@")
    host = netloc[2].lower()
    if port is not None and _DEFAULT_PORTS.get(scheme) == port:
        host = host.rpartition(":")[0]
    elif host.endswith(":"):  # "example.vn:" has an empty port
        host = host[:-1]
    query = "&".join(
        param for param in parts.query.split("&") if param and not param.lower().startswith("utm_")
    )
    path = parts.path or ("/" if host else "")
    return urlunsplit((scheme, netloc[0] + netloc[1] + host, path, query, ""))


def _bounded(prefix: str, value: str) -> str:
    identity = prefix + value
    if len(identity.encode("utf-8", errors="surrogatepass")) <= MAX_IDENTITY_BYTES:
        return identity
    return f"{prefix}sha256:{_sha256(value)}"


def _identity(article: ArticleData, source_id: str, title_key: str, body_key: str) -> str:
    guid = nfc(article.guid or "").strip()
    if guid:
        if _is_global_guid(guid):
            return _bounded("guid:", guid)
        return _bounded(f"guid:{source_id}:", guid)
    if article.url:
        return _bounded("url:", canonical_url(article.url))
    return "hash:" + _sha256(f"{title_key}\n{body_key}")


def _content_hash(article: ArticleData) -> str:
    displayed = [
        article.url,
        article.title,
        article.summary,
        article.content_html,
        article.author,
        article.published.isoformat() if article.published else None,
        article.updated.isoformat() if article.updated else None,
        article.image_url,
        list(article.tags),
    ]
    return _sha256(json.dumps(displayed, ensure_ascii=False))


def keys_for(article: ArticleData, *, source_id: str) -> ArticleKeys:
    """The identity, dedup, search and change keys of a parsed article from ``source_id``."""
    body_text = truncate(markup_text(article.content_html), BODY_TEXT_LIMIT) or article.summary
    title_key = tone_key(article.title)
    body_key = search_key(body_text)
    return ArticleKeys(
        identity=_identity(article, source_id, title_key, body_key),
        title_key=title_key,
        body_key=body_key,
        # search_key of the whole text equals the keys of its parts joined by a space,
        # so the body (the long part) is folded once, not twice.
        search_text=f"{search_key(f'{article.title} {article.summary} {article.author}')} {body_key}".strip(),
        content_hash=_content_hash(article),
    )
