"""The store's sources and page validators: configuration sync and what polls leave behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from syndication.store import Store
from syndication.types import ArticleData, ArticleKeys, KeyedArticle, PollRecord, SourceSpec, SourceState

NOW = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)
HANOI = timezone(timedelta(hours=7))


def spec(source_id: str, url: str, kind: str = "feed") -> SourceSpec:
    return SourceSpec(
        id=source_id,
        url=url,
        kind="html" if kind == "html" else "feed",
        categories=("thoi-su",),
        interval=timedelta(minutes=15),
    )


def article(identity: str, title: str) -> KeyedArticle:
    return KeyedArticle(
        data=ArticleData(guid=None, url=f"https://vnexpress.net/{identity}", title=title),
        keys=ArticleKeys(
            identity=f"url:{identity}", title_key=title, body_key="", search_text=title, content_hash=identity
        ),
    )


def test_sync_inserts_updates_and_keeps_unconfigured(store: Store) -> None:
    store.sync_sources(
        [spec("vnexpress", "https://vnexpress.net/rss/thoi-su.rss"), spec("tuoitre", "https://a")]
    )
    store.record_polls(
        [
            PollRecord(
                source_id="vnexpress",
                attempted=NOW,
                ok=True,
                next_attempt=NOW,
                etag='"v1"',
                last_modified="x",
            )
        ]
    )
    store.save_articles(source_id="tuoitre", categories=["thoi-su"], articles=[article("a", "Tin")], now=NOW)

    store.sync_sources(
        [spec("vnexpress", "https://vnexpress.net/rss/thoi-su.rss"), spec("dantri", "https://d")]
    )
    states = store.source_states()
    assert sorted(states) == ["dantri", "tuoitre", "vnexpress"]
    assert states["vnexpress"].etag == '"v1"'  # same URL: validators kept
    assert states["tuoitre"].article_count == 1  # no longer configured: kept with its articles
    assert store.count_articles() == 1

    store.sync_sources([spec("vnexpress", "https://vnexpress.net/rss/tin-moi-nhat.rss", kind="html")])
    moved = store.source_states(["vnexpress"])["vnexpress"]
    assert moved.url == "https://vnexpress.net/rss/tin-moi-nhat.rss"
    assert moved.kind == "html"
    assert (moved.etag, moved.last_modified) == (None, None)  # new URL: old validators meant nothing
    assert moved.last_attempt == NOW

    store.sync_sources([spec("dantri", "https://d", kind="html")])
    assert store.source_states(["dantri"])["dantri"].kind == "html"
    store.sync_sources([])


def test_source_states_subset_and_unknown(store: Store) -> None:
    store.sync_sources([spec("a", "https://a"), spec("b", "https://b")])
    states = store.source_states(["b", "nope", "b"])
    assert states == {"b": SourceState(id="b", url="https://b", kind="feed")}
    assert store.source_states([]) == {}


def test_poll_records_round_trip(store: Store) -> None:
    store.sync_sources([spec("vnexpress", "https://vnexpress.net/rss")])
    first = NOW.astimezone(HANOI)
    store.record_polls(
        [
            PollRecord(
                source_id="vnexpress",
                attempted=first,
                ok=True,
                next_attempt=first + timedelta(minutes=15),
                etag='"abc"',
                last_modified="Fri, 27 Nov 2026 01:00:00 GMT",
            ),
            PollRecord(source_id="unknown", attempted=NOW, ok=True, next_attempt=NOW),
        ]
    )
    state = store.source_states()["vnexpress"]
    assert state.last_attempt == state.last_success == NOW
    assert state.last_attempt is not None
    assert state.last_attempt.tzinfo == UTC
    assert state.next_attempt == NOW + timedelta(minutes=15)
    assert (state.etag, state.last_modified) == ('"abc"', "Fri, 27 Nov 2026 01:00:00 GMT")
    assert (state.last_error, state.error_count) == (None, 0)

    for failures in (1, 2):
        failed = NOW + timedelta(hours=failures)
        store.record_polls(
            [
                PollRecord(
                    source_id="vnexpress",
                    attempted=failed,
                    ok=False,
                    next_attempt=failed + timedelta(minutes=30),
                    error="HTTP 503 Service Unavailable",
                    error_count=failures,
                    keep_validators=True,
                )
            ]
        )
    state = store.source_states()["vnexpress"]
    assert state.last_attempt == NOW + timedelta(hours=2)
    assert state.last_success == NOW
    assert (state.last_error, state.error_count) == ("HTTP 503 Service Unavailable", 2)
    assert state.etag == '"abc"'

    # A 304: ok, validators kept as they were.
    later = NOW + timedelta(hours=3)
    store.record_polls(
        [
            PollRecord(
                source_id="vnexpress", attempted=later, ok=True, next_attempt=later, keep_validators=True
            )
        ]
    )
    state = store.source_states()["vnexpress"]
    assert (state.last_error, state.error_count, state.last_success) == (None, 0, later)
    assert (state.etag, state.last_modified) == ('"abc"', "Fri, 27 Nov 2026 01:00:00 GMT")

    # A 200 without validators replaces them with none.
    store.record_polls([PollRecord(source_id="vnexpress", attempted=later, ok=True, next_attempt=later)])
    state = store.source_states()["vnexpress"]
    assert (state.etag, state.last_modified) == (None, None)


def test_poll_warnings_last_until_the_next_reading(store: Store) -> None:
    store.sync_sources([spec("portal", "https://portal.vn/tin.html", "html")])
    warnings = (
        "converted text from the legacy Vietnamese encoding TCVN3 (ABC) to Unicode",
        "no charset declared",
    )

    def poll(hours: int, *, ok: bool = True, keep: bool = False, warned: tuple[str, ...] = ()) -> SourceState:
        when = NOW + timedelta(hours=hours)
        record = PollRecord(
            source_id="portal",
            attempted=when,
            next_attempt=when,
            ok=ok,
            error=None if ok else "HTTP 503",
            error_count=0 if ok else 1,
            keep_validators=keep,
            warnings=warned,
        )
        store.record_polls([record])
        return store.source_states()["portal"]

    joined = "\n".join(warnings)
    assert store.source_states()["portal"].last_warning is None
    assert poll(0, warned=warnings).last_warning == joined
    # A 304 read nothing new, a failure read nothing: the warnings stay.
    assert poll(1, keep=True).last_warning == joined
    failed = poll(2, ok=False, keep=True)
    assert (failed.last_error, failed.last_warning) == ("HTTP 503", joined)
    # A reading without warnings clears them.
    assert poll(3).last_warning is None


def test_page_validators_round_trip(store: Store) -> None:
    url = "https://baochinhphu.vn/thu-tuong-chu-tri-hop-102261127.htm"
    assert store.page_validators([url]) == {}
    store.save_page_validators([(url, '"p1"', None), ("https://b", None, "Thu, 26 Nov 2026")], now=NOW)
    assert store.page_validators([url, "https://b", "https://c"]) == {
        url: ('"p1"', None),
        "https://b": (None, "Thu, 26 Nov 2026"),
    }
    store.save_page_validators([(url, '"p2"', "Fri, 27 Nov 2026")], now=NOW + timedelta(hours=1))
    assert store.page_validators([url]) == {url: ('"p2"', "Fri, 27 Nov 2026")}
    store.save_page_validators([], now=NOW)
