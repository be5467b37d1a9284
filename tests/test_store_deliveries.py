"""Digest issues, the outbox of deliveries and the articles of a digest window, in the store.

Races run two ``Store`` objects (two engines, as two processes would have) in threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from syndication.errors import StoreError
from syndication.store import NO_ORGANISATION, NewDelivery, Store
from syndication.types import (
    ArticleData,
    ArticleKeys,
    DigestIssue,
    KeyedArticle,
    SourceSpec,
    Subscriber,
    SubscriberData,
)

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
VAN_PHONG = "Chi bộ Văn phòng"
TUYEN_GIAO = "Chi bộ Ban Tuyên giáo"
SO_Y_TE = "Đảng bộ Sở Y tế"

_T = TypeVar("_T")


def in_threads(store_url: str, work: Callable[[Store], _T], count: int = 2) -> list[_T]:
    """Run ``work`` at once in ``count`` threads, each on a Store of its own."""
    barrier = threading.Barrier(count)
    results: list[_T | None] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            with Store(store_url) as own:
                barrier.wait()
                results[index] = work(own)
        except BaseException as error:  # reported by the test below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [result for result in results if result is not None]


def subscribers(store: Store, count: int, organisation: str | None = VAN_PHONG) -> list[Subscriber]:
    rows = [
        SubscriberData(
            address=f"nguoi{i:05}@example.vn", display_name="Nguyễn Thị Hoà", organisation=organisation
        )
        for i in range(count)
    ]
    store.upsert_subscribers(rows, now=NOW)
    return store.list_subscribers()


def new(issue_id: int, subscriber: Subscriber, *, start: datetime = NOW - timedelta(days=1)) -> NewDelivery:
    return NewDelivery(
        subscriber_id=subscriber.id,
        address=subscriber.address,
        organisation=subscriber.organisation,
        message_id=f"<{issue_id}.{subscriber.id}@digest.example.vn>",
        window_start=start,
        window_end=NOW,
    )


def outbox(store: Store, count: int, digest: str = "daily") -> tuple[int, list[Subscriber]]:
    people = subscribers(store, count)
    issue, _ = store.create_issue(digest, NOW, now=NOW)
    assert store.add_deliveries(issue.id, [new(issue.id, s) for s in people], now=NOW) == count
    return issue.id, people


# --- issues ------------------------------------------------------------------------------


def test_issues_are_unique_by_digest_and_time(store: Store) -> None:
    first, created = store.create_issue("daily", NOW, now=NOW)
    assert created
    assert (first.digest, first.scheduled_for, first.created) == ("daily", NOW, NOW)
    again, created = store.create_issue("daily", NOW, now=NOW + timedelta(minutes=3))
    assert (again, created) == (first, False)
    weekly, _ = store.create_issue("weekly", NOW, now=NOW)
    tomorrow, _ = store.create_issue("daily", NOW + timedelta(days=1), now=NOW)
    assert len({first.id, weekly.id, tomorrow.id}) == 3

    assert store.get_issue(first.id) == first
    assert store.get_issue(10_000) is None
    assert store.latest_issue("daily") == tomorrow
    assert store.latest_issue("monthly") is None
    assert store.list_issues("daily") == [tomorrow, first]
    assert store.list_issues("daily", limit=1) == [tomorrow]


@pytest.mark.parametrize("issue_id", [0, -1, 2**31, 2**63, 10**30])
def test_an_id_no_row_can_have_finds_nothing(store: Store, issue_id: int) -> None:
    """From a URL or the command line: the database is not asked (it would fail: out of range)."""
    store.create_issue("daily", NOW, now=NOW)
    assert store.get_issue(issue_id) is None
    assert store.get_archive(issue_id, "0123456789abcdef") is None


def test_two_processes_creating_the_same_issue_get_one_row(store: Store, store_url: str) -> None:
    for hour in range(5):
        scheduled = NOW + timedelta(hours=hour)

        def create(own: Store, at: datetime = scheduled) -> tuple[DigestIssue, bool]:
            return own.create_issue("daily", at, now=NOW)

        results = in_threads(store_url, create)
        assert len({issue.id for issue, _ in results}) == 1
        assert sorted(created for _, created in results) == [False, True]
    assert len(store.list_issues("daily")) == 5


# --- the outbox --------------------------------------------------------------------------


def test_add_deliveries_is_idempotent_and_fast_enough_for_ten_thousand(store: Store) -> None:
    issue_id, people = outbox(store, 10_000)
    # A row already claimed is left as it is when the outbox is built again.
    (claimed,) = store.claim_deliveries(issue_id=issue_id, limit=1, lease=LEASE, owner="a", now=NOW)
    items = [new(issue_id, s, start=NOW - timedelta(days=7)) for s in people]
    assert store.add_deliveries(issue_id, items, now=NOW) == 0
    assert store.add_deliveries(issue_id, [], now=NOW) == 0
    assert store.delivery_counts(issue_id) == {
        "pending": 9_999,
        "sending": 1,
        "sent": 0,
        "retrying": 0,
        "failed": 0,
        "superseded": 0,
    }
    stored = store.get_deliveries(issue_id)
    assert stored[0] == claimed
    assert {d.window_start for d in stored} == {NOW - timedelta(days=1)}

    # Half new, half known: only the new half is added.
    more = subscribers(store, 10_100)[10_000:]
    assert store.add_deliveries(issue_id, [*items[:50], *(new(issue_id, s) for s in more)], now=NOW) == 100


def test_message_ids_are_unique(store: Store) -> None:
    people = subscribers(store, 2)
    issue, _ = store.create_issue("daily", NOW, now=NOW)
    second = replace(new(issue.id, people[1]), message_id="<x@y>")
    clash = [new(issue.id, people[0]), second, replace(second, address="khac@example.vn")]
    with pytest.raises(StoreError, match="cannot add deliveries"):
        store.add_deliveries(issue.id, clash, now=NOW)
    assert store.get_deliveries(issue.id) == []  # nothing of the batch
    with pytest.raises(StoreError, match="cannot add deliveries"):
        store.add_deliveries(10_000, [new(10_000, people[0])], now=NOW)  # no such issue


def test_two_senders_never_claim_the_same_delivery(store: Store, store_url: str) -> None:
    issue_id, _ = outbox(store, 200)

    def drain(own: Store) -> list[int]:
        owner = f"sender-{threading.get_ident()}"
        mine: list[int] = []
        while batch := own.claim_deliveries(issue_id=issue_id, limit=7, lease=LEASE, owner=owner, now=NOW):
            mine.extend(d.id for d in batch)
            assert own.mark_sent([d.id for d in batch], owner=owner, now=NOW) == len(batch)
        return mine

    first, second = in_threads(store_url, drain)
    assert not set(first) & set(second)
    assert sorted(first + second) == [d.id for d in store.get_deliveries(issue_id)]
    assert len(first + second) == 200
    assert store.delivery_counts(issue_id)["sent"] == 200
    assert {d.attempts for d in store.get_deliveries(issue_id)} == {1}


def test_claim_marks_sending_oldest_first(store: Store) -> None:
    issue_id, people = outbox(store, 5)
    other, _ = store.create_issue("weekly", NOW, now=NOW)
    store.add_deliveries(other.id, [new(other.id, people[0])], now=NOW)

    claimed = store.claim_deliveries(issue_id=issue_id, limit=3, lease=LEASE, owner="a", now=NOW)
    assert [d.address for d in claimed] == [p.address for p in people[:3]]
    assert {(d.status, d.attempts, d.issue_id) for d in claimed} == {("sending", 1, issue_id)}
    assert store.claim_deliveries(issue_id=issue_id, limit=0, lease=LEASE, owner="a", now=NOW) == []
    rest = store.claim_deliveries(issue_id=None, limit=10, lease=LEASE, owner="b", now=NOW)
    assert [(d.issue_id, d.address) for d in rest] == [
        (issue_id, people[3].address),
        (issue_id, people[4].address),
        (other.id, people[0].address),
    ]


def test_expired_lease_is_claimed_again_and_the_stale_sender_cannot_finish(store: Store) -> None:
    issue_id, _ = outbox(store, 1)
    (first,) = store.claim_deliveries(issue_id=issue_id, limit=5, lease=LEASE, owner="a", now=NOW)
    # Within the lease nobody else gets it; at its very end neither.
    assert store.claim_deliveries(issue_id=issue_id, limit=5, lease=LEASE, owner="b", now=NOW + LEASE) == []

    later = NOW + LEASE + timedelta(seconds=1)
    (second,) = store.claim_deliveries(issue_id=issue_id, limit=5, lease=LEASE, owner="b", now=later)
    assert (second.id, second.message_id, second.attempts) == (first.id, first.message_id, 2)

    # "a" wakes up: it can no longer finish the row "b" holds.
    assert store.mark_sent([first.id], owner="a", now=later) == 0
    assert not store.mark_failed(first.id, owner="a", error="550", now=later)
    assert not store.mark_retry(first.id, owner="a", error="421", next_attempt=later, now=later)
    assert store.mark_sent([first.id], owner="b", now=later) == 1
    (sent,) = store.get_deliveries(issue_id)
    assert (sent.status, sent.sent_at, sent.attempts) == ("sent", later, 2)
    # Finished rows are finished: nobody marks them again, and they are never claimed.
    assert store.mark_sent([first.id], owner="b", now=later) == 0
    assert not store.mark_failed(first.id, owner="b", error="x", now=later)
    far = later + timedelta(days=30)
    assert store.claim_deliveries(issue_id=None, limit=5, lease=LEASE, owner="c", now=far) == []


def test_claims_say_who_holds_what_until_when(store: Store) -> None:
    issue_id, _ = outbox(store, 5)
    other, _ = store.create_issue("weekly", NOW, now=NOW)
    store.add_deliveries(other.id, [new(other.id, p) for p in store.list_subscribers()[:1]], now=NOW)
    store.claim_deliveries(issue_id=issue_id, limit=2, lease=LEASE, owner="a", now=NOW)
    store.claim_deliveries(issue_id=issue_id, limit=1, lease=LEASE, owner="b", now=NOW + timedelta(minutes=1))
    store.claim_deliveries(issue_id=other.id, limit=1, lease=LEASE, owner="b", now=NOW + timedelta(minutes=2))

    assert [(c.owner, c.count, c.until) for c in store.delivery_claims(issue_id=issue_id, now=NOW)] == [
        ("a", 2, NOW + LEASE),
        ("b", 1, NOW + timedelta(minutes=1) + LEASE),
    ]
    assert [(c.owner, c.count) for c in store.delivery_claims(issue_id=None, now=NOW)] == [("a", 2), ("b", 2)]
    # Run-out leases are nobody's: the next claim takes them anyway.
    later = NOW + LEASE + timedelta(seconds=90)
    assert [(c.owner, c.count) for c in store.delivery_claims(issue_id=None, now=later)] == [("b", 1)]


def test_a_gone_senders_claims_are_taken_over_with_their_message_ids(store: Store) -> None:
    issue_id, _ = outbox(store, 3)
    taken = store.claim_deliveries(issue_id=issue_id, limit=2, lease=LEASE, owner="gone", now=NOW)
    (kept,) = store.claim_deliveries(issue_id=issue_id, limit=5, lease=LEASE, owner="alive", now=NOW)

    assert store.take_over_deliveries(owner="gone", issue_id=issue_id + 1, now=NOW) == 0  # another issue
    assert store.take_over_deliveries(owner="gone", issue_id=issue_id, now=NOW) == 2
    again = store.claim_deliveries(issue_id=issue_id, limit=5, lease=LEASE, owner="new", now=NOW)
    assert [(d.id, d.message_id, d.attempts) for d in again] == [(d.id, d.message_id, 2) for d in taken]
    # "gone" comes back after all: it cannot finish what was taken over; "alive" kept its own.
    assert store.mark_sent([d.id for d in taken], owner="gone", now=NOW) == 0
    assert store.mark_sent([kept.id], owner="alive", now=NOW) == 1
    assert store.take_over_deliveries(owner="gone", issue_id=None, now=NOW) == 0


def test_retry_waits_for_its_time_and_failure_is_final(store: Store) -> None:
    issue_id, _ = outbox(store, 2)
    one, two = store.claim_deliveries(issue_id=issue_id, limit=5, lease=LEASE, owner="a", now=NOW)
    retry_at = NOW + timedelta(minutes=10)
    assert store.mark_retry(one.id, owner="a", error="421 thử lại sau", next_attempt=retry_at, now=NOW)
    assert store.mark_failed(two.id, owner="a", error="550 không có hộp thư", now=NOW)
    assert (
        store.claim_deliveries(
            issue_id=issue_id, limit=5, lease=LEASE, owner="a", now=retry_at - timedelta(seconds=1)
        )
        == []
    )

    (again,) = store.claim_deliveries(issue_id=issue_id, limit=5, lease=LEASE, owner="b", now=retry_at)
    assert (again.id, again.attempts, again.last_error) == (one.id, 2, "421 thử lại sau")
    assert store.delivery_counts(issue_id) == {
        "pending": 0,
        "sending": 1,
        "sent": 0,
        "retrying": 0,
        "failed": 1,
        "superseded": 0,
    }
    failed = store.get_deliveries(issue_id)[1]
    assert (failed.status, failed.last_error, failed.sent_at) == ("failed", "550 không có hộp thư", None)


def test_removed_or_unsubscribed_subscribers_are_not_sent_to(store: Store) -> None:
    issue_id, people = outbox(store, 4)
    (sent,) = store.claim_deliveries(issue_id=issue_id, limit=1, lease=LEASE, owner="a", now=NOW)
    store.mark_sent([sent.id], owner="a", now=NOW)

    assert store.remove_subscriber(people[0].address)  # already sent to
    assert store.remove_subscriber(people[1].address)  # not yet
    store.unsubscribe(people[2].token, now=NOW)
    (claimed,) = store.claim_deliveries(issue_id=issue_id, limit=5, lease=LEASE, owner="a", now=NOW)
    assert claimed.address == people[3].address

    kept = store.get_deliveries(issue_id)
    # Past deliveries stay for reports, with their copies of the address and organisation.
    assert [(d.subscriber_id, d.address, d.status) for d in kept] == [
        (None, people[0].address, "sent"),
        (None, people[1].address, "failed"),
        (people[2].id, people[2].address, "failed"),
        (people[3].id, people[3].address, "sending"),
    ]
    assert kept[1].last_error == "not sent: subscriber removed"
    assert kept[2].last_error == "not sent: subscriber no longer active"
    assert store.issue_report(issue_id) == [(VAN_PHONG, 1, 2, 0, 1)]


def test_superseded_deliveries_are_neither_failed_nor_waiting(store: Store) -> None:
    issue_id, people = outbox(store, 4)
    one, two, three = store.claim_deliveries(issue_id=issue_id, limit=3, lease=LEASE, owner="a", now=NOW)
    store.mark_sent([one.id], owner="a", now=NOW)
    store.mark_failed(two.id, owner="a", error="550", now=NOW)
    store.mark_retry(three.id, owner="a", error="451", next_attempt=NOW + LEASE, now=NOW)
    later, _ = store.create_issue("daily", NOW + timedelta(days=1), now=NOW)
    other, _ = store.create_issue("weekly", NOW + timedelta(days=1), now=NOW)

    assert store.supersede(digest="weekly", before_issue=other.id, now=NOW) == 0  # another digest's
    # The one waiting for a retry and the one never tried; not the sent, failed or new ones.
    assert store.supersede(digest="daily", before_issue=later.id, now=NOW) == 2

    statuses = {d.address: (d.status, d.last_error) for d in store.get_deliveries(issue_id)}
    assert [statuses[p.address] for p in people] == [
        ("sent", None),
        ("failed", "550"),
        ("superseded", f"superseded by issue {later.id}"),
        ("superseded", f"superseded by issue {later.id}"),
    ]
    assert store.issue_report(issue_id) == [(VAN_PHONG, 1, 1, 2, 0)]
    assert store.delivery_counts(issue_id)["superseded"] == 2
    far = NOW + timedelta(days=30)
    assert store.claim_deliveries(issue_id=None, limit=5, lease=LEASE, owner="b", now=far) == []
    assert store.next_delivery(now=far) is None
    # Retention keeps them apart in the issue's totals too.
    store.prune(articles_before=None, deliveries_before=far, nodes_before=NOW)
    assert store.get_deliveries(issue_id) == []
    assert store.issue_report(issue_id) == [(VAN_PHONG, 1, 1, 2, 0)]
    assert store.delivery_counts(issue_id) == {
        "pending": 0,
        "sending": 0,
        "sent": 1,
        "retrying": 0,
        "failed": 1,
        "superseded": 2,
    }


def test_claim_fills_its_limit_past_rows_it_cannot_send(store: Store) -> None:
    issue_id, people = outbox(store, 6)
    for subscriber in people[:4]:
        store.unsubscribe(subscriber.token, now=NOW)
    claimed = store.claim_deliveries(issue_id=issue_id, limit=2, lease=LEASE, owner="a", now=NOW)
    assert [d.address for d in claimed] == [people[4].address, people[5].address]


def test_last_windows_count_only_sent_deliveries_of_the_digest(store: Store) -> None:
    people = subscribers(store, 4)
    a, b, c, d = people
    windows = [NOW - timedelta(days=2), NOW - timedelta(days=1), NOW]
    issues = []
    for end in windows[1:]:
        issue, _ = store.create_issue("daily", end, now=end)
        items = [
            NewDelivery(
                subscriber_id=s.id,
                address=s.address,
                organisation=s.organisation,
                message_id=f"<{issue.id}.{s.id}@x>",
                window_start=end - timedelta(days=1),
                window_end=end,
            )
            for s in (a, b, c)
        ]
        store.add_deliveries(issue.id, items, now=end)
        issues.append(issue)
    weekly, _ = store.create_issue("weekly", NOW, now=NOW)
    store.add_deliveries(weekly.id, [new(weekly.id, d)], now=NOW)

    def send(issue_id: int, sent: set[int], failed: set[int]) -> None:
        for delivery in store.claim_deliveries(issue_id=issue_id, limit=10, lease=LEASE, owner="s", now=NOW):
            if delivery.subscriber_id in sent:
                store.mark_sent([delivery.id], owner="s", now=NOW)
            elif delivery.subscriber_id in failed:
                store.mark_failed(delivery.id, owner="s", error="550", now=NOW)

    send(issues[0].id, sent={a.id, b.id}, failed={c.id})
    send(issues[1].id, sent={a.id}, failed={b.id})  # c's stays sending
    send(weekly.id, sent={d.id}, failed=set())
    assert store.last_windows("daily", [a.id, b.id, c.id, d.id, 10_000]) == {
        a.id: windows[2],
        b.id: windows[1],
    }
    assert store.last_windows("weekly", [a.id, d.id]) == {d.id: NOW}
    assert store.last_windows("daily", []) == {}


def test_issue_report_per_organisation(store: Store) -> None:
    outcome = {
        "bithu@vanphong.example.vn": "sent",
        "phobithu@vanphong.example.vn": "failed",
        "chung@vanphong.example.vn": "sending",
        "bithu@soyte.example.vn": "sent",
        "tuyengiao@example.vn": "sending",
        "ca.nhan@example.org": "retrying",
        "ca.nhan2@example.org": "sending",
    }
    organisations = {"vanphong": VAN_PHONG, "soyte": SO_Y_TE, "tuyengiao": TUYEN_GIAO}
    rows = [
        SubscriberData(
            address=address,
            organisation=next((name for key, name in organisations.items() if key in address), None),
        )
        for address in outcome
    ]
    store.upsert_subscribers(rows, now=NOW)
    earlier, _ = store.create_issue("daily", NOW - timedelta(days=1), now=NOW)
    store.add_deliveries(earlier.id, [new(earlier.id, s) for s in store.list_subscribers()[:2]], now=NOW)
    issue, _ = store.create_issue("daily", NOW, now=NOW)
    store.add_deliveries(issue.id, [new(issue.id, s) for s in store.list_subscribers()], now=NOW)
    store.upsert_subscribers([SubscriberData(address="x@example.vn", organisation=VAN_PHONG)], now=NOW)

    for delivery in store.claim_deliveries(issue_id=issue.id, limit=10, lease=LEASE, owner="s", now=NOW):
        wanted = outcome[delivery.address]
        if wanted == "sent":
            store.mark_sent([delivery.id], owner="s", now=NOW)
        elif wanted == "failed":
            store.mark_failed(delivery.id, owner="s", error="550", now=NOW)
        elif wanted == "retrying":
            store.mark_retry(delivery.id, owner="s", error="421", next_attempt=NOW + LEASE, now=NOW)
    # An organisation's name is the one the subscriber had when the issue was built.
    store.add_subscriber(SubscriberData(address="tuyengiao@example.vn", organisation="Ban mới"), now=NOW)

    # By name, "Đ" among the D; no organisation last.
    assert store.issue_report(issue.id) == [
        (TUYEN_GIAO, 0, 0, 0, 1),
        (VAN_PHONG, 1, 1, 0, 1),
        (SO_Y_TE, 1, 0, 0, 0),
        (NO_ORGANISATION, 0, 0, 0, 2),
    ]
    assert store.delivery_counts(issue.id) == {
        "pending": 0,
        "sending": 3,
        "sent": 2,
        "retrying": 1,
        "failed": 1,
        "superseded": 0,
    }
    assert NO_ORGANISATION == "(không thuộc tổ chức)"
    assert store.issue_report(10_000) == []
    assert store.delivery_counts(10_000) == dict.fromkeys(
        ["pending", "sending", "sent", "retrying", "failed", "superseded"], 0
    )


# --- articles for a digest ----------------------------------------------------------------


def keyed(n: int, *, title: str | None = None, published: datetime | None = None) -> KeyedArticle:
    title = title or f"Bản tin số {n}"
    return KeyedArticle(
        data=ArticleData(guid=None, url=f"https://dangcongsan.vn/{n}", title=title, published=published),
        keys=ArticleKeys(
            identity=f"url:https://dangcongsan.vn/{n}",
            title_key=title.lower(),
            body_key="",
            search_text=title.lower(),
            content_hash=str(n),
        ),
    )


def test_digest_articles_window_edges_categories_and_duplicates(store: Store) -> None:
    store.sync_sources(
        [
            SourceSpec(
                id=s, url=f"https://{s}.vn/rss", kind="feed", categories=(), interval=timedelta(hours=1)
            )
            for s in ("dcs", "bao")
        ]
    )
    t0, t1, t2 = NOW - timedelta(days=1), NOW - timedelta(hours=12), NOW

    def save(source: str, categories: list[str], items: list[KeyedArticle], at: datetime) -> None:
        store.save_articles(source_id=source, categories=categories, articles=items, now=at)

    save("dcs", ["thoi-su"], [keyed(1, published=t0 - timedelta(hours=1))], t0)  # on the window's start: out
    save("dcs", ["thoi-su"], [keyed(2, published=t1)], t1)
    # Back-dated: published a week ago, but we learned of it inside the window.
    save("dcs", ["xay-dung-dang"], [keyed(3, published=NOW - timedelta(days=7))], t1)
    save("bao", ["kinh-te"], [keyed(4, published=t1 + timedelta(hours=1))], t2)  # on the window's end: in
    # Republished by another source: a duplicate, never listed twice.
    save("bao", ["kinh-te"], [keyed(5, title="Bản tin số 2", published=t1)], t2)
    save("dcs", ["thoi-su"], [keyed(6, published=t2)], t2 + timedelta(microseconds=1))  # after: out

    def titles(categories: list[str], limit: int = 10) -> list[str]:
        found = store.digest_articles(categories=categories, seen_after=t0, seen_until=t2, limit=limit)
        return [article.title for article in found]

    assert titles([]) == ["Bản tin số 4", "Bản tin số 2", "Bản tin số 3"]
    assert titles(["thoi-su", "xay-dung-dang"]) == ["Bản tin số 2", "Bản tin số 3"]
    assert titles(["kinh-te"]) == ["Bản tin số 4", "Bản tin số 2"]  # the duplicate's root got its category
    assert titles(["the-thao"]) == []
    assert titles([], limit=1) == ["Bản tin số 4"]
    assert titles([], limit=0) == []
