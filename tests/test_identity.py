"""Article keys: identity, dedup keys, search text, content hash."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import unicodedata
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syndication.ingest.identity import MAX_IDENTITY_BYTES, canonical_url, keys_for
from syndication.text import NEAR_DUPLICATE_THRESHOLD, similarity
from syndication.types import ArticleData

ARTICLE = ArticleData(
    guid=None,
    url=None,
    title="Uỷ ban nhân dân Thành phố Hà Nội họp về thuỷ lợi",
    summary="Cuộc họp bàn kế hoạch chống ngập mùa mưa.",
    content_html="<p>Sáng 27/11, <b>Uỷ ban</b> nhân dân thành phố họp về thuỷ lợi và sức khoẻ cộng đồng.</p>",
    author="Nguyễn Văn Hoà",
    published=datetime(2026, 11, 27, 1, 30, tzinfo=UTC),
    tags=("Thời sự",),
)


def with_(**changes: object) -> ArticleData:
    return dataclasses.replace(ARTICLE, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("guid", "identity"),
    [
        ("https://vnexpress.net/a-123.html", "guid:https://vnexpress.net/a-123.html"),
        ("HTTP://VnExpress.net/a-123.html", "guid:HTTP://VnExpress.net/a-123.html"),
        ("tag:tuoitre.vn,2026:abc", "guid:tag:tuoitre.vn,2026:abc"),
        ("TAG:tuoitre.vn,2026:abc", "guid:TAG:tuoitre.vn,2026:abc"),
        ("  4812346 ", "guid:vnexpress:4812346"),
        ("/relative/123", "guid:vnexpress:/relative/123"),
        ("ftp://example.vn/1", "guid:vnexpress:ftp://example.vn/1"),
        ("https:no-host", "guid:vnexpress:https:no-host"),
        ("tag:", "guid:vnexpress:tag:"),
        ("http://[::1", "guid:vnexpress:http://[::1"),
    ],
)
def test_identity_from_guid(guid: str, identity: str) -> None:
    article = with_(guid=guid, url="https://vnexpress.net/other.html")
    assert keys_for(article, source_id="vnexpress").identity == identity


def test_global_guid_is_shared_between_sources_local_is_not() -> None:
    global_guid = with_(guid="https://vnexpress.net/a-123.html")
    assert keys_for(global_guid, source_id="a").identity == keys_for(global_guid, source_id="b").identity
    local_guid = with_(guid="123")
    assert keys_for(local_guid, source_id="a").identity != keys_for(local_guid, source_id="b").identity


def test_identity_from_canonical_url() -> None:
    article = with_(url="HTTPS://VnExpress.NET:443/thoi-su/a.html?utm_source=rss&id=7&UTM_Medium=x#binh-luan")
    assert keys_for(article, source_id="s").identity == "url:https://vnexpress.net/thoi-su/a.html?id=7"


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://vnexpress.net/a.html", "https://vnexpress.net/a.html"),
        ("HTTP://VnExpress.Net:80", "http://vnexpress.net/"),
        ("http://vnexpress.net:8080/A.html", "http://vnexpress.net:8080/A.html"),
        ("https://vnexpress.net:443/?utm_campaign=x", "https://vnexpress.net/"),
        ("https://vnexpress.net/?a=1&utm_source=x&b=%20&c", "https://vnexpress.net/?a=1&b=%20&c"),
        ("https://User@VnExpress.net/a#top", "https://User@vnexpress.net/a"),
        ("https://[2001:DB8::1]:443/a", "https://[2001:db8::1]/a"),
        ("https://vnexpress.net:/a", "https://vnexpress.net/a"),
        ("https://vnexpress.net:99999/a", "https://vnexpress.net:99999/a"),
    ],
)
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def test_identity_from_hash_of_title_and_body_keys() -> None:
    keys = keys_for(ARTICLE, source_id="s")
    expected = hashlib.sha256(f"{keys.title_key}\n{keys.body_key}".encode()).hexdigest()
    assert keys.identity == f"hash:{expected}"
    # Another tone placement, case and spacing of the same text: the same article.
    respelled = with_(
        title="UỶ BAN NHÂN DÂN thành phố Hà Nội họp về  thủy lợi",
        content_html="<div>Sáng 27/11, Ủy ban nhân dân thành phố họp về thủy lợi và sức khỏe cộng đồng.</div>"
        "<!-- -->",
    )
    assert keys_for(respelled, source_id="other").identity == keys.identity
    assert keys_for(with_(title="Hạ tầng"), source_id="s").identity != keys.identity


def test_long_identities_are_hashed() -> None:
    guid = "mã-" * 1000
    identity = keys_for(with_(guid=guid), source_id="s").identity
    assert identity == "guid:s:sha256:" + hashlib.sha256(guid.encode()).hexdigest()
    url = "https://vnexpress.net/" + "a" * 2000
    identity = keys_for(with_(url=url), source_id="s").identity
    assert identity == "url:sha256:" + hashlib.sha256(url.encode()).hexdigest()
    short = keys_for(with_(guid="g" * 100), source_id="s").identity
    assert len(short.encode()) <= MAX_IDENTITY_BYTES
    assert short == "guid:s:" + "g" * 100


def test_title_key_body_key_and_search_text() -> None:
    keys = keys_for(ARTICLE, source_id="s")
    assert keys.title_key == "uỷ ban nhân dân thành phố hà nội họp về thuỷ lợi"
    assert keys.body_key == "sang 27 11 uy ban nhan dan thanh pho hop ve thuy loi va suc khoe cong dong"
    assert keys.search_text == (
        "uy ban nhan dan thanh pho ha noi hop ve thuy loi "
        "cuoc hop ban ke hoach chong ngap mua mua "
        "nguyen van hoa "
        "sang 27 11 uy ban nhan dan thanh pho hop ve thuy loi va suc khoe cong dong"
    )


def test_body_key_falls_back_to_summary() -> None:
    keys = keys_for(with_(content_html=""), source_id="s")
    assert keys.body_key == "cuoc hop ban ke hoach chong ngap mua mua"


def test_body_keys_of_the_same_story_are_near_duplicates() -> None:
    other = with_(
        content_html="<p>Sáng 27/11, Ủy ban nhân dân thành phố họp về thủy lợi và sức khỏe cộng đồng</p>"
    )
    a = keys_for(ARTICLE, source_id="a").body_key
    b = keys_for(other, source_id="b").body_key
    assert similarity(a, b) >= NEAR_DUPLICATE_THRESHOLD


def test_content_hash_follows_displayed_fields() -> None:
    base = keys_for(ARTICLE, source_id="s").content_hash
    assert keys_for(ARTICLE, source_id="other").content_hash == base
    assert keys_for(with_(guid="different"), source_id="s").content_hash == base
    changes: list[dict[str, object]] = [
        {"title": "Tiêu đề mới"},
        {"summary": "Tóm tắt mới"},
        {"content_html": "<p>Khác</p>"},
        {"author": "Lê Văn B"},
        {"published": datetime(2026, 11, 27, 2, 0, tzinfo=UTC)},
        {"updated": datetime(2026, 11, 27, 2, 0, tzinfo=UTC)},
        {"image_url": "https://cdn.vn/a.jpg"},
        {"tags": ("Thời sự", "Hà Nội")},
        {"url": "https://vnexpress.net/a.html"},
    ]
    hashes = {keys_for(with_(**change), source_id="s").content_hash for change in changes}
    assert len(hashes) == len(changes)
    assert base not in hashes


def test_keys_for_is_picklable() -> None:
    assert pickle.loads(pickle.dumps(keys_for)) is keys_for
    keys = keys_for(ARTICLE, source_id="s")
    assert pickle.loads(pickle.dumps(keys)) == keys


texts = st.text(max_size=40)


@given(texts, texts, st.one_of(st.none(), texts), st.one_of(st.none(), texts))
def test_keys_ignore_normalisation_form(title: str, body: str, guid: str | None, url: str | None) -> None:
    article = ArticleData(guid=guid, url=url, title=title, content_html=body)
    nfd = ArticleData(
        guid=guid,
        url=url,
        title=unicodedata.normalize("NFD", title),
        content_html=unicodedata.normalize("NFD", body),
    )
    keys = keys_for(article, source_id="s")
    other = keys_for(nfd, source_id="s")
    assert (keys.identity, keys.title_key, keys.body_key) == (other.identity, other.title_key, other.body_key)
    assert keys.identity.startswith(("guid:", "url:", "hash:"))
    assert keys_for(article, source_id="s") == keys
