"""The store for the running service: leases on sources, the outbox's next due time,
issues marked planned, the processes at work, and the retention clean-up.

Every time is given (``now``); nothing sleeps. Races run two ``Store`` objects in
threads, as two processes would.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import bindparam, select, text

from syndication.store import NO_ORGANISATION, Pruned, Store, migrate
from syndication.store.schema import UTCDateTime, article_categories, article_sources
from syndication.types import (
    Article,
    Delivery,
    DigestIssue,
    KeyedArticle,
    NodeInfo,
    PollRecord,
    Subscriber,
    SubscriberData,
)
from tests.test_store_articles import BODY, add_sources, keyed
from tests.test_store_deliveries import SO_Y_TE, VAN_PHONG, in_threads, new, outbox

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
LEASE = timedelta(minutes=15)
HANOI = timezone(timedelta(hours=7))
MINUTE = timedelta(minutes=1)


def polled(store: Store, source_id: str, next_attempt: datetime) -> None:
    """Record a successful poll of ``source_id`` due again at ``next_attempt``."""
    record = PollRecord(
        source_id=source_id, attempted=NOW - timedelta(hours=1), ok=True, next_attempt=next_attempt
    )
    store.record_polls([record])


# --- leases on sources ---------------------------------------------------------------


def test_claim_takes_due_free_sources_never_polled_first_then_longest_due(store: Store) -> None:
    add_sources(store, "a", "b", "c", "d", "e", "khong-cau-hinh")
    polled(store, "b", NOW - timedelta(minutes=5))
    polled(store, "c", NOW - timedelta(minutes=20))
    polled(store, "d", NOW + timedelta(minutes=5))  # not due yet
    polled(store, "e", NOW)  # due at this very moment
    # "khong-cau-hinh" is stored (and never polled) but no longer configured: never claimed.
    configured = ["e", "d", "c", "b", "a", "chua-luu"]

    def claim(owner: str, limit: int) -> list[str]:
        return store.claim_sources(configured, limit=limit, lease=LEASE, owner=owner, now=NOW)

    assert claim("w1", 0) == []
    assert claim("w1", 2) == ["a", "c"]
    assert claim("w2", 10) == ["b", "e"]
    assert claim("w3", 10) == []
    assert store.claim_sources([], limit=10, lease=LEASE, owner="w3", now=NOW) == []
    # "d" falls due in five minutes; the others are leased until NOW + LEASE.
    later = NOW + timedelta(minutes=5)
    assert store.claim_sources(configured, limit=10, lease=LEASE, owner="w3", now=later) == ["d"]


def test_a_lease_keeps_a_source_from_everyone_until_it_ends(store: Store) -> None:
    add_sources(store, "a")
    assert store.claim_sources(["a"], limit=5, lease=LEASE, owner="w1", now=NOW) == ["a"]
    # Not even its holder claims it twice; at the lease's very end it is still held.
    assert store.claim_sources(["a"], limit=5, lease=LEASE, owner="w1", now=NOW + MINUTE) == []
    assert store.claim_sources(["a"], limit=5, lease=LEASE, owner="w2", now=NOW + LEASE) == []
    # The holder died: once the lease ran out, another worker takes the source.
    after = NOW + LEASE + timedelta(seconds=1)
    assert store.claim_sources(["a"], limit=5, lease=LEASE, owner="w2", now=after) == ["a"]
    assert store.claim_sources(["a"], limit=5, lease=LEASE, owner="w1", now=after + MINUTE) == []


def test_recording_a_poll_gives_the_lease_back(store: Store) -> None:
    add_sources(store, "a", "b")
    assert store.claim_sources(["a", "b"], limit=5, lease=LEASE, owner="w1", now=NOW) == ["a", "b"]
    polled(store, "a", NOW + timedelta(minutes=10))
    # "a" waits for its next poll, not for a lease; "b" is still leased (until NOW + 15m).
    assert store.claim_sources(["a", "b"], limit=5, lease=LEASE, owner="w2", now=NOW + MINUTE) == []
    at_ten = NOW + timedelta(minutes=10)
    assert store.claim_sources(["a", "b"], limit=5, lease=LEASE, owner="w2", now=at_ten) == ["a"]
    state = store.source_states(["a"])["a"]
    assert (state.last_success, state.next_attempt) == (NOW - timedelta(hours=1), at_ten)


def test_release_sources_gives_back_only_the_owners_leases(store: Store) -> None:
    add_sources(store, "a", "b", "c", "d", "e")
    ids = ["a", "b", "c", "d", "e"]
    assert store.claim_sources(ids, limit=3, lease=LEASE, owner="w1", now=NOW) == ["a", "b", "c"]
    assert store.claim_sources(ids, limit=1, lease=LEASE, owner="w2", now=NOW) == ["d"]

    assert store.release_sources(owner="w1", ids=["a", "d", "e"]) == 1  # "d" is w2's, "e" nobody's
    assert store.release_sources(owner="w1", ids=[]) == 0
    assert store.claim_sources(ids, limit=5, lease=LEASE, owner="w3", now=NOW) == ["a", "e"]
    assert store.release_sources(owner="w1") == 2
    assert store.release_sources(owner="w1") == 0
    assert store.release_sources(owner="nobody") == 0
    assert store.claim_sources(ids, limit=5, lease=LEASE, owner="w4", now=NOW) == ["b", "c"]
    # w2 still holds "d", w3 "a" and "e", w4 "b" and "c".
    assert store.claim_sources(ids, limit=5, lease=LEASE, owner="w5", now=NOW) == []
    assert store.release_sources(owner="w2") == 1
    assert store.claim_sources(ids, limit=5, lease=LEASE, owner="w5", now=NOW) == ["d"]


def test_two_workers_never_claim_the_same_source(store: Store, store_url: str) -> None:
    ids = [f"nguon-{i:02}" for i in range(40)]
    add_sources(store, *ids)

    def drain(own: Store) -> list[str]:
        owner = f"worker-{threading.get_ident()}"
        mine: list[str] = []
        while batch := own.claim_sources(ids, limit=3, lease=LEASE, owner=owner, now=NOW):
            mine.extend(batch)
            own.record_polls(
                [PollRecord(source_id=s, attempted=NOW, ok=True, next_attempt=NOW + MINUTE) for s in batch]
            )
        return mine

    first, second = in_threads(store_url, drain)
    assert not set(first) & set(second)
    assert sorted(first + second) == ids


def test_next_poll(store: Store) -> None:
    add_sources(store, "a", "b", "c")
    assert store.next_poll([], now=NOW) is None
    assert store.next_poll(["chua-luu"], now=NOW) is None
    assert store.next_poll(["a", "b", "chua-luu"], now=NOW) == NOW  # never polled: due now

    polled(store, "a", NOW + timedelta(minutes=20))
    polled(store, "b", NOW + timedelta(minutes=5))
    assert store.next_poll(["a", "b"], now=NOW) == NOW + timedelta(minutes=5)
    assert store.next_poll(["a"], now=NOW) == NOW + timedelta(minutes=20)
    assert store.next_poll(["a", "b", "c"], now=NOW) == NOW  # "c" never polled
    # Overdue: now, never a time in the past.
    assert store.next_poll(["a", "b"], now=NOW + timedelta(hours=1)) == NOW + timedelta(hours=1)

    # A leased source counts from its lease's end, when another worker would take it.
    polled(store, "b", NOW - MINUTE)
    assert store.claim_sources(["b"], limit=1, lease=LEASE, owner="w1", now=NOW) == ["b"]
    assert store.next_poll(["a", "b"], now=NOW + MINUTE) == NOW + LEASE
    assert store.next_poll(["b"], now=NOW + LEASE + MINUTE) == NOW + LEASE + MINUTE
    polled(store, "b", NOW + timedelta(minutes=30))
    assert store.next_poll(["a", "b"], now=NOW + MINUTE) == NOW + timedelta(minutes=20)


def test_next_poll_of_a_never_polled_source_in_its_first_poll_is_its_lease_end(store: Store) -> None:
    add_sources(store, "moi", "cu")
    polled(store, "cu", NOW + timedelta(hours=1))
    assert store.claim_sources(["moi", "cu"], limit=5, lease=LEASE, owner="w1", now=NOW) == ["moi"]
    # Another worker must not be told "now" while the first poll is under way.
    assert store.next_poll(["moi", "cu"], now=NOW + MINUTE) == NOW + LEASE
    after = NOW + LEASE + MINUTE
    assert store.next_poll(["moi", "cu"], now=after) == after  # its holder died: due again


# --- the outbox ------------------------------------------------------------------------


def test_released_never_tried_deliveries_are_pending_and_claimable_at_once(store: Store) -> None:
    issue_id, _ = outbox(store, 3)
    one, two, three = store.claim_deliveries(issue_id=issue_id, limit=5, lease=LEASE, owner="a", now=NOW)
    later = NOW + MINUTE
    assert store.release_deliveries([one.id, two.id], owner="b", now=later) == 0  # not b's
    assert store.release_deliveries([one.id, two.id, 10_000], owner="a", now=later) == 2
    assert store.release_deliveries([one.id], owner="a", now=later) == 0  # given back already
    stored = store.get_deliveries(issue_id)
    assert [(d.status, d.attempts, d.next_attempt) for d in stored] == [
        ("pending", 0, None),
        ("pending", 0, None),
        ("sending", 1, None),
    ]
    # The releasing sender cannot finish them any more; its other row it still can.
    assert store.mark_sent([one.id, two.id], owner="a", now=later) == 0
    again = store.claim_deliveries(issue_id=issue_id, limit=5, lease=LEASE, owner="b", now=later)
    assert [(d.id, d.attempts, d.message_id) for d in again] == [
        (one.id, 1, one.message_id),
        (two.id, 1, two.message_id),
    ]
    assert store.mark_sent([three.id], owner="a", now=later) == 1


def test_a_released_retry_is_due_again_at_once_with_its_attempts_and_error(store: Store) -> None:
    issue_id, _ = outbox(store, 1)
    (first,) = store.claim_deliveries(issue_id=issue_id, limit=1, lease=LEASE, owner="a", now=NOW)
    retry_at = NOW + timedelta(minutes=10)
    assert store.mark_retry(first.id, owner="a", error="421 thử lại sau", next_attempt=retry_at, now=NOW)
    (second,) = store.claim_deliveries(issue_id=issue_id, limit=1, lease=LEASE, owner="a", now=retry_at)
    assert second.attempts == 2

    released_at = retry_at + MINUTE
    assert store.release_deliveries([second.id], owner="a", now=released_at) == 1
    (stored,) = store.get_deliveries(issue_id)
    assert (stored.status, stored.attempts, stored.next_attempt, stored.last_error) == (
        "retrying",
        1,
        released_at,
        "421 thử lại sau",
    )
    assert store.next_delivery(now=released_at) == released_at
    (third,) = store.claim_deliveries(issue_id=issue_id, limit=1, lease=LEASE, owner="b", now=released_at)
    assert (third.id, third.attempts) == (first.id, 2)


def test_next_delivery(store: Store) -> None:
    assert store.next_delivery(now=NOW) is None
    issue_id, _ = outbox(store, 2)
    assert store.next_delivery(now=NOW) == NOW  # pending

    one, two = store.claim_deliveries(issue_id=issue_id, limit=5, lease=LEASE, owner="a", now=NOW)
    assert store.next_delivery(now=NOW) == NOW + LEASE  # a crashed sender's rows fall due then
    retry_at = NOW + timedelta(minutes=40)
    store.mark_retry(one.id, owner="a", error="421", next_attempt=retry_at, now=NOW)
    assert store.next_delivery(now=NOW) == NOW + LEASE
    store.mark_sent([two.id], owner="a", now=NOW)
    assert store.next_delivery(now=NOW) == retry_at
    assert store.next_delivery(now=retry_at + MINUTE) == retry_at + MINUTE  # overdue: now

    (again,) = store.claim_deliveries(issue_id=issue_id, limit=5, lease=LEASE, owner="a", now=retry_at)
    assert store.next_delivery(now=retry_at) == retry_at + LEASE
    store.mark_failed(again.id, owner="a", error="550", now=retry_at)
    assert store.next_delivery(now=retry_at) is None  # every row sent or failed


def test_next_delivery_looks_at_every_issue(store: Store) -> None:
    first, (person,) = outbox(store, 1)
    later, _ = store.create_issue("weekly", NOW, now=NOW)
    store.add_deliveries(later.id, [new(later.id, person)], now=NOW)
    (done,) = store.claim_deliveries(issue_id=first, limit=1, lease=LEASE, owner="a", now=NOW)
    store.mark_sent([done.id], owner="a", now=NOW)
    assert store.next_delivery(now=NOW + MINUTE) == NOW + MINUTE  # the weekly row is pending


# --- issues ----------------------------------------------------------------------------


def test_find_issue_and_mark_planned(store: Store) -> None:
    issue, created = store.create_issue("daily", NOW, now=NOW)
    assert created
    assert issue.planned is None
    assert store.find_issue("daily", NOW) == issue
    assert store.find_issue("daily", NOW.astimezone(HANOI)) == issue  # the same instant
    assert store.find_issue("daily", NOW + timedelta(seconds=1)) is None
    assert store.find_issue("weekly", NOW) is None

    planned_at = NOW + timedelta(minutes=2)
    store.mark_planned(issue.id, now=planned_at)
    store.mark_planned(10_000, now=planned_at)  # no such issue: nothing happens
    marked = DigestIssue(id=issue.id, digest="daily", scheduled_for=NOW, created=NOW, planned=planned_at)
    assert store.find_issue("daily", NOW) == marked
    assert store.get_issue(issue.id) == marked
    assert store.create_issue("daily", NOW, now=NOW + timedelta(hours=1)) == (marked, False)
    other, _ = store.create_issue("daily", NOW + timedelta(days=1), now=NOW)
    assert other.planned is None
    assert store.find_issue("daily", NOW + timedelta(days=1)) == other
    assert store.find_issue("daily", NOW - timedelta(seconds=1)) is None
    assert store.find_issue("daily", NOW + timedelta(hours=12)) is None
    assert store.list_issues("daily") == [other, marked]


def test_upgrade_to_0005_counts_earlier_issues_as_planned(store_url: str) -> None:
    created = datetime(2026, 11, 1, 7, 0, 5, tzinfo=UTC)
    with Store(store_url) as store:
        with store._db.schema_transaction("upgrade to 0004") as connection:
            migrate.upgrade(connection, "0004")
        with store._db.transaction("add an issue", write=True) as connection:
            insert = text(
                "INSERT INTO digest_issues (digest, scheduled_for, created) VALUES ('daily', :s, :c)"
            ).bindparams(bindparam("s", type_=UTCDateTime), bindparam("c", type_=UTCDateTime))
            connection.execute(insert, {"s": created - timedelta(seconds=5), "c": created})
        store.upgrade()
        (issue,) = store.list_issues("daily")
        assert issue.planned == issue.created == created
        assert store.list_nodes() == []


# --- nodes -----------------------------------------------------------------------------


def test_heartbeats_list_and_remove_nodes(store: Store) -> None:
    started = NOW - timedelta(hours=2)
    store.heartbeat(owner="may-1:4242", role="run", started=started, now=NOW)
    store.heartbeat(owner="may-2:17", role="worker", started=NOW, now=NOW)
    store.heartbeat(owner="may-3:9", role="worker", started=NOW, now=NOW)
    # Again: the heartbeat and the role change; when it started does not.
    store.heartbeat(owner="may-1:4242", role="scheduler", started=NOW, now=NOW + MINUTE)
    assert store.list_nodes() == [
        NodeInfo(owner="may-1:4242", role="scheduler", started=started, heartbeat=NOW + MINUTE),
        NodeInfo(owner="may-2:17", role="worker", started=NOW, heartbeat=NOW),
        NodeInfo(owner="may-3:9", role="worker", started=NOW, heartbeat=NOW),
    ]
    store.remove_node("may-2:17")
    store.remove_node("khong-co:1")
    assert [n.owner for n in store.list_nodes()] == ["may-1:4242", "may-3:9"]

    # The clean-up forgets processes silent since before the cut-off (not the one on it).
    store.heartbeat(owner="may-3:9", role="worker", started=NOW, now=NOW + timedelta(days=1))
    pruned = store.prune(articles_before=None, deliveries_before=None, nodes_before=NOW + MINUTE)
    assert pruned == Pruned(nodes=0)
    pruned = store.prune(articles_before=None, deliveries_before=None, nodes_before=NOW + 2 * MINUTE)
    assert pruned == Pruned(nodes=1)
    assert [n.owner for n in store.list_nodes()] == ["may-3:9"]


# --- retention: articles ----------------------------------------------------------------

CUT = NOW - timedelta(days=365)
OLD = CUT - timedelta(days=30)


def links(store: Store) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Every ``(article_id, category)`` and ``(article_id, source_id)`` row."""
    with store._db.transaction("read links") as connection:
        categories = connection.execute(
            select(article_categories.c.article_id, article_categories.c.category)
        )
        sources = connection.execute(select(article_sources.c.article_id, article_sources.c.source_id))
        return sorted((i, c) for i, c in categories), sorted((i, s) for i, s in sources)


def everything(store: Store) -> dict[str, Article]:
    return {a.url or "": a for a in store.list_articles(limit=1000, include_duplicates=True)}


def test_prune_deletes_old_articles_with_their_duplicates_links_and_page_validators(store: Store) -> None:
    add_sources(store, "dcs", "bao", "tt")

    def save(source: str, category: str, at: datetime, item: KeyedArticle) -> None:
        store.save_articles(source_id=source, categories=[category], articles=[item], now=at)

    hoi_nghi = "Hội nghị Ban Chấp hành Trung ương lần thứ mười"
    lich = "Lịch tiếp công dân năm 2026"
    # An old story, republished soon after elsewhere, and republished again yesterday.
    save("dcs", "thoi-su", OLD, keyed(hoi_nghi, BODY, url="https://dcs.vn/a", published=OLD))
    save(
        "bao",
        "kinh-te",
        OLD + MINUTE,
        keyed(hoi_nghi, BODY + " (Theo Báo Nhân Dân)", url="https://bao.vn/a", published=OLD),
    )
    yesterday = NOW - timedelta(days=1)
    save(
        "tt",
        "xa-hoi",
        yesterday,
        keyed(hoi_nghi, BODY + " Xem thêm.", url="https://tt.vn/a", published=yesterday),
    )
    # First seen long ago but dated in the future: kept, though its old duplicate goes.
    save("dcs", "thoi-su", OLD, keyed(lich, BODY, url="https://dcs.vn/c", published=NOW))
    save(
        "bao",
        "kinh-te",
        OLD,
        keyed(lich, BODY + " (Theo Báo Nhân Dân)", url="https://bao.vn/c", published=OLD),
    )
    # Back-dated: published long ago, but we learned of it yesterday.
    save(
        "dcs",
        "thoi-su",
        yesterday,
        keyed("Tư liệu: Đại hội lần thứ nhất", url="https://dcs.vn/b", published=OLD),
    )
    # Exactly on the cut-off: kept.
    save("dcs", "thoi-su", CUT, keyed("Đúng hạn", url="https://dcs.vn/e", published=CUT))
    save(
        "tt", "the-thao", OLD, keyed("Giải bóng đá công nhân viên chức", url="https://tt.vn/f", published=OLD)
    )
    store.save_page_validators([("https://dcs.vn/trang-cu", '"e1"', None)], now=OLD)
    store.save_page_validators([("https://dcs.vn/trang-moi", None, "Mon, 01 Dec 2025 06:00:00 GMT")], now=CUT)

    before = everything(store)
    assert before["https://bao.vn/a"].duplicate_of == before["https://dcs.vn/a"].id
    assert before["https://tt.vn/a"].duplicate_of == before["https://dcs.vn/a"].id
    assert before["https://bao.vn/c"].duplicate_of == before["https://dcs.vn/c"].id
    gone = {"https://dcs.vn/a", "https://bao.vn/a", "https://tt.vn/a", "https://bao.vn/c", "https://tt.vn/f"}
    gone_ids = {before[url].id for url in gone}
    categories, sources = links(store)
    assert {i for i, _ in categories} == {a.id for a in before.values()}
    version = store.content_version()
    urls = ["https://dcs.vn/trang-cu", "https://dcs.vn/trang-moi"]
    validators = store.page_validators(urls)

    # Nothing is kept for ever... unless the cut-offs say so.
    assert store.prune(articles_before=None, deliveries_before=None, nodes_before=OLD) == Pruned()
    assert (everything(store), links(store), store.content_version()) == (
        before,
        (categories, sources),
        version,
    )
    assert store.page_validators(urls) == validators

    pruned = store.prune(articles_before=CUT, deliveries_before=None, nodes_before=OLD)
    assert pruned == Pruned(articles=5, page_validators=1)
    assert everything(store) == {url: a for url, a in before.items() if url not in gone}
    assert links(store) == (
        [row for row in categories if row[0] not in gone_ids],
        [row for row in sources if row[0] not in gone_ids],
    )
    # The feeds that listed a deleted story change; a hidden duplicate's source does not.
    assert store.changed_scopes(since=version) == (
        version + 1,
        frozenset(
            {
                "all",
                "category:thoi-su",
                "category:kinh-te",
                "category:xa-hoi",
                "category:the-thao",
                "source:dcs",
                "source:tt",
            }
        ),
    )
    assert store.page_validators(urls) == {"https://dcs.vn/trang-moi": validators["https://dcs.vn/trang-moi"]}

    # Again: nothing more to do, and no feed changes.
    assert store.prune(articles_before=CUT, deliveries_before=None, nodes_before=OLD) == Pruned()
    assert store.content_version() == version + 1
    assert len(everything(store)) == 3


# --- retention: deliveries --------------------------------------------------------------


IssueState = tuple[DigestIssue | None, list[tuple[str, int, int, int]], dict[str, int], str | None]
"""An issue, its report, its counts per status and its archived page."""


def people(store: Store, organisations: dict[str, str | None]) -> dict[str, Subscriber]:
    rows = [SubscriberData(address=a, organisation=o) for a, o in organisations.items()]
    store.upsert_subscribers(rows, now=NOW)
    return {s.address: s for s in store.list_subscribers()}


def issue_with(store: Store, scheduled: datetime, outcomes: dict[Subscriber, str]) -> int:
    """An issue of "daily" for ``scheduled`` whose deliveries end as ``outcomes`` say."""
    issue, _ = store.create_issue("daily", scheduled, now=scheduled)
    store.add_deliveries(issue.id, [new(issue.id, s) for s in outcomes], now=scheduled)
    wanted = {s.address: status for s, status in outcomes.items()}
    for d in store.claim_deliveries(issue_id=issue.id, limit=100, lease=LEASE, owner="s", now=scheduled):
        status = wanted[d.address]
        if status == "sent":
            store.mark_sent([d.id], owner="s", now=scheduled)
        elif status == "failed":
            store.mark_failed(d.id, owner="s", error="550", now=scheduled)
        elif status == "retrying":
            store.mark_retry(d.id, owner="s", error="421", next_attempt=NOW + LEASE, now=scheduled)
        elif status == "pending":
            store.release_deliveries([d.id], owner="s", now=scheduled)
        # "sending": left claimed, as by a sender that died.
    store.save_archive(issue.id, "noi-dung", f"<p>{scheduled}</p>", now=scheduled)
    return issue.id


def test_prune_deletes_deliveries_of_finished_old_issues_and_keeps_their_totals(store: Store) -> None:
    p = people(
        store,
        {
            "bithu@vanphong.example.vn": VAN_PHONG,
            "phobithu@vanphong.example.vn": VAN_PHONG,
            "chung@vanphong.example.vn": VAN_PHONG,
            "bithu@soyte.example.vn": SO_Y_TE,
            "ca.nhan@example.org": None,
        },
    )
    a, b, c = (
        p["bithu@vanphong.example.vn"],
        p["phobithu@vanphong.example.vn"],
        p["chung@vanphong.example.vn"],
    )
    d, e = p["bithu@soyte.example.vn"], p["ca.nhan@example.org"]
    finished = issue_with(store, OLD, {a: "sent", b: "failed", c: "sent", d: "sent", e: "failed"})
    retrying = issue_with(store, OLD + timedelta(days=1), {a: "sent", b: "retrying"})
    pending = issue_with(store, OLD + timedelta(days=2), {a: "sent", b: "pending"})
    sending = issue_with(store, OLD + timedelta(days=3), {a: "sent", b: "sending"})
    recent = issue_with(store, CUT, {a: "sent", d: "failed"})  # on the cut-off: kept
    issues = [finished, retrying, pending, sending, recent]

    def state() -> list[IssueState]:
        return [
            (
                store.get_issue(i),
                store.issue_report(i),
                store.delivery_counts(i),
                store.get_archive(i, "noi-dung"),
            )
            for i in issues
        ]

    def rows() -> list[list[Delivery]]:
        return [store.get_deliveries(i) for i in issues]

    before, before_rows = state(), rows()
    assert store.issue_report(finished) == [
        (VAN_PHONG, 2, 1, 0, 0),
        (SO_Y_TE, 1, 0, 0, 0),
        (NO_ORGANISATION, 0, 1, 0, 0),
    ]
    assert store.delivery_counts(pending) == {
        "pending": 1,
        "sending": 0,
        "sent": 1,
        "retrying": 0,
        "failed": 0,
        "superseded": 0,
    }
    assert store.prune(articles_before=None, deliveries_before=None, nodes_before=OLD) == Pruned()
    assert (state(), rows()) == (before, before_rows)

    pruned = store.prune(articles_before=None, deliveries_before=CUT, nodes_before=OLD)
    assert pruned == Pruned(deliveries=5, issues_summarised=1)
    assert store.get_deliveries(finished) == []
    assert store.get_archive(finished, "noi-dung") is None
    after = state()
    assert [x[:3] for x in after] == [x[:3] for x in before]  # issue, report, counts as they were
    assert after[1:] == before[1:]
    assert rows()[1:] == before_rows[1:]

    assert store.prune(articles_before=None, deliveries_before=CUT, nodes_before=OLD) == Pruned()
    assert state() == after

    # Once the old issues are finished, they go too.
    for issue_id in (retrying, pending, sending):
        for row in store.claim_deliveries(
            issue_id=issue_id, limit=5, lease=LEASE, owner="s2", now=NOW + timedelta(hours=1)
        ):
            store.mark_sent([row.id], owner="s2", now=NOW + timedelta(hours=1))
    reports = [store.issue_report(i) for i in issues]
    assert reports[1:4] == [[(VAN_PHONG, 2, 0, 0, 0)]] * 3
    pruned = store.prune(articles_before=None, deliveries_before=CUT, nodes_before=OLD)
    assert pruned == Pruned(deliveries=6, issues_summarised=3)
    assert [store.issue_report(i) for i in issues] == reports
    assert store.delivery_counts(sending) == {
        "pending": 0,
        "sending": 0,
        "sent": 2,
        "retrying": 0,
        "failed": 0,
        "superseded": 0,
    }
    assert [len(r) for r in rows()] == [0, 0, 0, 0, 2]
