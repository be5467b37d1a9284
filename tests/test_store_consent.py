"""Consent in the store: opt-in requests beside the status, the person's choices against the
directory, confirmation links that expire and their clean-up, subscribe limits shared
through the store, and the migration that added them (0006)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, text

from syndication.store import PreferenceConflict, Pruned, Store, SubscriberCounts, migrate
from syndication.store.schema import UTCDateTime
from syndication.types import RateLimit, SubscriberData
from tests.test_store_subscribers import person

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
EXPIRY = timedelta(days=7)

HOA = "bithu.vanphong@example.vn"
DUC = "pho.bithu@example.vn"


def directory() -> list[SubscriberData]:
    return [
        person(HOA, display_name="Nguyễn Thị Hoà", organisation="Chi bộ Văn phòng", categories=("thoi-su",)),
        person(DUC, display_name="Trần Văn Đức", organisation="Chi bộ Văn phòng"),
    ]


def status(store: Store, address: str) -> str:
    found = store.get_subscriber(address=address)
    assert found is not None
    return found.status


# --- an opt-out stays an opt-out -------------------------------------------------------------


def test_the_form_and_the_directory_never_undo_an_unsubscribe(store: Store) -> None:
    """The sequence of issue 9, item 7, in the store: unsubscribed, the public form, an
    unchanged re-import; only the person's confirmation makes the address active."""
    store.upsert_subscribers(directory(), now=NOW)
    hoa = store.get_subscriber(address=HOA)
    assert hoa is not None
    store.unsubscribe(hoa.token, now=NOW)

    asked, needs_mail = store.subscribe_pending(person(HOA, status="pending"), now=NOW + HOUR)
    assert needs_mail
    assert (asked.status, asked.opt_in_requested) == ("unsubscribed", NOW + HOUR)

    counts = store.upsert_subscribers(directory(), now=NOW + 2 * HOUR)
    assert counts == SubscriberCounts(unchanged=1, kept_unsubscribed=1)
    again = store.add_subscriber(person(HOA, status="active"), now=NOW + 2 * HOUR)
    assert again.status == "unsubscribed"
    added = store.upsert_subscribers([person(HOA, status="pending")], now=NOW + 2 * HOUR, event="add")
    assert added == SubscriberCounts(kept_unsubscribed=1)
    kept = store.get_subscriber(address=HOA)
    assert kept is not None
    assert (kept.status, kept.opt_in_requested, kept.token) == ("unsubscribed", NOW + HOUR, asked.token)
    # Nothing that is not hers reaches her.
    assert [s.address for s in store.list_subscribers(status="active")] == [DUC]

    done = store.confirm(asked.token, expiry=EXPIRY, now=NOW + 3 * HOUR)
    assert done is not None
    assert done.state == "confirmed"
    assert (done.subscriber.status, done.subscriber.confirmed) == ("active", NOW + 3 * HOUR)
    assert done.subscriber.opt_in_requested is None


def test_unsubscribing_and_bouncing_close_a_request(store: Store) -> None:
    pending, _ = store.subscribe_pending(person("moi@example.vn"), now=NOW)
    left = store.unsubscribe(pending.token, now=NOW + HOUR)
    assert left is not None
    assert (left.status, left.opt_in_requested) == ("unsubscribed", None)
    assert store.confirm(pending.token, expiry=EXPIRY, now=NOW + HOUR) is None

    other, _ = store.subscribe_pending(person("khac@example.vn"), now=NOW)
    assert store.record_bounce(other.id, threshold=1, now=NOW + HOUR)
    bounced = store.get_subscriber(address="khac@example.vn")
    assert bounced is not None
    assert (bounced.status, bounced.opt_in_requested) == ("bounced", None)

    # An unsubscribed address with a request keeps both through a bounce.
    asked, _ = store.subscribe_pending(person("moi@example.vn"), now=NOW + 2 * HOUR)
    assert not store.record_bounce(asked.id, threshold=1, now=NOW + 3 * HOUR)
    after = store.get_subscriber(token=asked.token)
    assert after is not None
    assert (after.status, after.opt_in_requested, after.bounces) == ("unsubscribed", NOW + 2 * HOUR, 1)


def test_the_directory_vouching_closes_a_pending_request(store: Store) -> None:
    pending, _ = store.subscribe_pending(person("moi@example.vn"), now=NOW)
    assert store.upsert_subscribers([person("moi@example.vn")], now=NOW + HOUR) == SubscriberCounts(updated=1)
    active = store.get_subscriber(address="moi@example.vn")
    assert active is not None
    assert (active.status, active.confirmed, active.opt_in_requested) == ("active", NOW + HOUR, None)
    confirmation = store.confirmation(pending.token, expiry=EXPIRY, now=NOW + HOUR)
    assert confirmation is not None
    assert confirmation.state == "confirmed"  # "already confirmed", not a dead link


# --- the person's choices win over the directory ----------------------------------------------


def test_a_reimport_keeps_what_the_person_chose_and_reports_it(store: Store) -> None:
    store.upsert_subscribers(directory(), now=NOW)
    hoa = store.get_subscriber(address=HOA)
    assert hoa is not None

    saved = store.set_preferences(hoa.token, categories=["kinh-te", "xay-dung-dang"], digest="daily", now=NOW)
    assert saved is not None
    # Only the field that changed became hers.
    assert (saved.categories_chosen, saved.digest_chosen) == (NOW, None)
    # Saving the same again changes nothing, not even when she chose it.
    assert (
        store.set_preferences(
            hoa.token, categories=["xay-dung-dang", "kinh-te"], digest="daily", now=NOW + DAY
        )
        == saved
    )

    counts = store.upsert_subscribers(directory(), now=NOW + HOUR)
    assert counts == SubscriberCounts(
        unchanged=2,
        conflicts=(
            PreferenceConflict(
                address=HOA,
                field="categories",
                directory="thoi-su",
                chosen="kinh-te xay-dung-dang",
                chosen_at=NOW,
            ),
        ),
    )
    # The directory still decides the fields she did not set, and reports nothing for
    # a field that agrees with her.
    rows = [
        person(HOA, display_name="Nguyễn Thị Hòa", categories=("kinh-te", "xay-dung-dang"), digest="weekly"),
        directory()[1],
    ]
    assert store.upsert_subscribers(rows, now=NOW + 2 * HOUR) == SubscriberCounts(updated=1, unchanged=1)
    after = store.get_subscriber(address=HOA)
    assert after is not None
    assert (after.display_name, after.organisation, after.categories, after.digest) == (
        "Nguyễn Thị Hòa",
        None,
        ("kinh-te", "xay-dung-dang"),
        "weekly",
    )

    # Once she picks a digest, that is hers too; "all categories" is a choice like any other.
    store.set_preferences(hoa.token, categories=[], digest="daily", now=NOW + DAY)
    counts = store.upsert_subscribers(rows, now=NOW + 2 * DAY)
    assert [(c.field, c.directory, c.chosen, c.chosen_at) for c in counts.conflicts] == [
        ("categories", "kinh-te xay-dung-dang", "", NOW + DAY),
        ("digest", "weekly", "daily", NOW + DAY),
    ]
    assert counts.unchanged == 2


def test_a_request_of_the_form_is_not_the_persons_choice_until_confirmed(store: Store) -> None:
    store.upsert_subscribers(directory(), now=NOW)
    hoa = store.get_subscriber(address=HOA)
    assert hoa is not None
    store.set_preferences(hoa.token, categories=["kinh-te"], digest="weekly", now=NOW)
    store.unsubscribe(hoa.token, now=NOW)

    # Anyone asks for other categories in her name: they are not hers...
    asked, _ = store.subscribe_pending(person(HOA, categories=("the-thao",), digest="weekly"), now=NOW + HOUR)
    assert (asked.categories, asked.categories_chosen, asked.digest_chosen) == (("the-thao",), None, NOW)
    counts = store.upsert_subscribers(directory(), now=NOW + 2 * HOUR)
    assert [c.field for c in counts.conflicts] == ["digest"]
    # ...until she confirms the request: then all of it is.
    done = store.confirm(asked.token, expiry=EXPIRY, now=NOW + 3 * HOUR)
    assert done is not None
    assert (done.subscriber.categories_chosen, done.subscriber.digest_chosen) == (
        NOW + 3 * HOUR,
        NOW + 3 * HOUR,
    )


# --- confirmation links expire ----------------------------------------------------------------


def test_a_confirmation_link_works_for_the_expiry_and_not_after(store: Store) -> None:
    pending, _ = store.subscribe_pending(person("moi@example.vn"), now=NOW)
    late = NOW + EXPIRY + timedelta(seconds=1)

    opened = store.confirmation(pending.token, expiry=EXPIRY, now=NOW + EXPIRY)
    assert opened is not None
    assert opened.state == "open"
    expired = store.confirm(pending.token, expiry=EXPIRY, now=late)
    assert expired is not None
    assert (expired.state, expired.subscriber.status) == ("expired", "pending")
    assert status(store, "moi@example.vn") == "pending"
    # A longer expiry configured: the same request is open again.
    done = store.confirm(pending.token, expiry=EXPIRY * 2, now=late)
    assert done is not None
    assert (done.state, done.subscriber.status) == ("confirmed", "active")

    assert store.confirmation("khong-co-token-nao-nhu-vay", expiry=EXPIRY, now=NOW) is None


def test_the_clean_up_deletes_unconfirmed_requests_and_forgets_old_ones(store: Store) -> None:
    store.upsert_subscribers(
        [*directory(), person("tu-danh-ba@example.vn", status="pending")], now=NOW - 30 * DAY
    )
    hoa = store.get_subscriber(address=HOA)
    assert hoa is not None
    store.unsubscribe(hoa.token, now=NOW - 20 * DAY)
    store.subscribe_pending(person(HOA), now=NOW - 8 * DAY)  # unsubscribed, with a stale request
    store.subscribe_pending(person("cu@example.vn"), now=NOW - 8 * DAY)  # never confirmed
    store.subscribe_pending(person("moi@example.vn"), now=NOW - 6 * DAY)  # still open
    store.subscribe_pending(person("tu-danh-ba@example.vn"), now=NOW - 8 * DAY)

    pruned = store.prune(
        articles_before=None, deliveries_before=None, nodes_before=NOW, requests_before=NOW - EXPIRY
    )

    assert pruned == Pruned(subscribers=2)
    assert store.get_subscriber(address="cu@example.vn") is None
    assert store.get_subscriber(address="tu-danh-ba@example.vn") is None  # the next import brings it back
    kept = store.get_subscriber(address=HOA)
    assert kept is not None
    assert (kept.status, kept.opt_in_requested) == ("unsubscribed", None)  # the opt-out is remembered
    fresh = store.get_subscriber(address="moi@example.vn")
    assert fresh is not None
    assert (fresh.status, fresh.opt_in_requested) == ("pending", NOW - 6 * DAY)
    assert status(store, DUC) == "active"
    assert store.prune(articles_before=None, deliveries_before=None, nodes_before=NOW) == Pruned()


# --- subscribe limits kept in the store --------------------------------------------------------


def test_rate_limits_slide_and_count_nothing_when_refused(store: Store) -> None:
    mailbox = RateLimit(key="mailbox:an", limit=2, window=DAY)
    site = RateLimit(key="site:confirmations", limit=3, window=HOUR)

    assert store.take_rate_limits([mailbox, site], now=NOW) is None
    assert store.take_rate_limits([mailbox, site], now=NOW + timedelta(minutes=10)) is None
    refused = store.take_rate_limits([mailbox, site], now=NOW + timedelta(minutes=20))
    assert refused == (mailbox, DAY - timedelta(minutes=20))
    # The refused request took no hit of the site's limit.
    other = RateLimit(key="mailbox:binh", limit=2, window=DAY)
    assert store.take_rate_limits([other, site], now=NOW + timedelta(minutes=30)) is None
    assert store.take_rate_limits([other, site], now=NOW + timedelta(minutes=40)) == (
        site,
        timedelta(minutes=20),
    )
    # The first hit leaves the window: one more fits.
    assert store.take_rate_limits([mailbox], now=NOW + DAY) is None
    assert store.take_rate_limits([mailbox], now=NOW + DAY) == (mailbox, timedelta(minutes=10))


def test_rate_limits_are_shared_by_every_store_on_the_database(store: Store, store_url: str) -> None:
    limit = RateLimit(key="client:203.0.113.7", limit=2, window=HOUR)
    with Store(store_url) as other:  # another process, or this one after a restart
        assert store.take_rate_limits([limit], now=NOW) is None
        assert other.take_rate_limits([limit], now=NOW) is None
        assert store.take_rate_limits([limit], now=NOW) == (limit, HOUR)
        assert other.take_rate_limits([limit], now=NOW + HOUR - timedelta(milliseconds=100)) == (
            limit,
            timedelta(seconds=1),  # at least a second
        )


def test_a_lowered_limit_waits_for_enough_hits_to_leave(store: Store) -> None:
    for minute in range(3):
        assert (
            store.take_rate_limits(
                [RateLimit(key="k", limit=5, window=HOUR)], now=NOW + minute * timedelta(minutes=1)
            )
            is None
        )
    lowered = RateLimit(key="k", limit=1, window=HOUR)
    # Three hits and room for none: all three must leave, the newest at NOW + 2 min + 1 h.
    assert store.take_rate_limits([lowered], now=NOW + timedelta(minutes=5)) == (
        lowered,
        timedelta(minutes=57),
    )


def test_rate_limits_refuse_what_cannot_be_kept(store: Store) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        store.take_rate_limits([RateLimit(key="k", limit=0, window=HOUR)], now=NOW)
    with pytest.raises(ValueError, match="rate limit"):
        store.take_rate_limits([RateLimit(key="", limit=1, window=HOUR)], now=NOW)
    with pytest.raises(ValueError, match="rate limit"):
        store.take_rate_limits([RateLimit(key="k" * 101, limit=1, window=HOUR)], now=NOW)
    assert store.take_rate_limits([], now=NOW) is None


def test_the_clean_up_forgets_old_hits(store: Store) -> None:
    limit = RateLimit(key="k", limit=1, window=DAY)
    assert store.take_rate_limits([limit], now=NOW) is None
    assert store.take_rate_limits([RateLimit(key="j", limit=1, window=DAY)], now=NOW + DAY) is None
    pruned = store.prune(
        articles_before=None, deliveries_before=None, nodes_before=NOW, rate_hits_before=NOW + HOUR
    )
    assert pruned == Pruned(rate_hits=1)
    assert store.take_rate_limits([limit], now=NOW + HOUR) is None  # its hit is gone


# --- the migration ------------------------------------------------------------------------------


def test_upgrade_0005_to_0006_keeps_subscribers_and_restores_opt_outs(store_url: str) -> None:
    asked = NOW - 2 * DAY
    with Store(store_url) as store:
        with store._db.schema_transaction("upgrade to 0005") as connection:
            migrate.upgrade(connection, "0005")
        rows = [
            # (address, status, confirmed, status_changed)
            ("active@example.vn", "active", NOW - 30 * DAY, NOW - 30 * DAY),
            ("moi@example.vn", "pending", None, asked),  # asked on the form two days ago
            # Unsubscribed, then anyone used the form: the old code made it pending.
            ("quay-lai@example.vn", "pending", NOW - 30 * DAY, asked),
            ("roi-di@example.vn", "unsubscribed", NOW - 30 * DAY, NOW - 9 * DAY),
        ]
        insert = text(
            "INSERT INTO subscribers (address, display_name, categories, digest, status, token, created, "
            "updated, confirmed, status_changed, bounces) "
            "VALUES (:a, '', '', 'daily', :s, :t, :c, :c, :k, :sc, 0)"
        ).bindparams(
            bindparam("c", type_=UTCDateTime),
            bindparam("k", type_=UTCDateTime),
            bindparam("sc", type_=UTCDateTime),
        )
        with store._db.transaction("add subscribers", write=True) as connection:
            for n, (address, state, confirmed, changed) in enumerate(rows):
                connection.execute(
                    insert,
                    {
                        "a": address,
                        "s": state,
                        "t": f"token-{n}-" + "x" * 30,
                        "c": NOW - 40 * DAY,
                        "k": confirmed,
                        "sc": changed,
                    },
                )

        store.upgrade()

        found = {s.address: s for s in store.list_subscribers()}
        assert {a: (s.status, s.opt_in_requested) for a, s in found.items()} == {
            "active@example.vn": ("active", None),
            "moi@example.vn": ("pending", asked),
            "quay-lai@example.vn": ("unsubscribed", asked),
            "roi-di@example.vn": ("unsubscribed", None),
        }
        assert all((s.categories_chosen, s.digest_chosen) == (None, None) for s in found.values())
        # Links mailed before the upgrade still work until they expire.
        done = store.confirm("token-2-" + "x" * 30, expiry=EXPIRY, now=NOW)
        assert done is not None
        assert done.subscriber.status == "active"
        assert store.take_rate_limits([RateLimit(key="k", limit=1, window=DAY)], now=NOW) is None
