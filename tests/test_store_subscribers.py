"""Subscribers and organisations in the store: the directory's upsert, double opt-in, bounces,
and the migration that added them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy
from sqlalchemy.pool import NullPool

from syndication.errors import StoreError
from syndication.store import Store, SubscriberCounts, migrate
from syndication.store.migrate import head_revisions
from syndication.store.schema import article_categories, article_sources, articles, feed_scopes
from syndication.types import SourceSpec, Subscriber, SubscriberData

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
EXPIRY = timedelta(days=7)

VAN_PHONG = "Chi bộ Văn phòng"
TUYEN_GIAO = "Chi bộ Ban Tuyên giáo"
DANG_BO = "Đảng bộ Khối các cơ quan tỉnh"


def person(address: str, **fields: object) -> SubscriberData:
    return SubscriberData(address=address, **fields)  # type: ignore[arg-type]


def directory() -> list[SubscriberData]:
    return [
        person(
            "bithu.vanphong@example.vn",
            display_name="Nguyễn Thị Hoà",
            organisation=VAN_PHONG,
            organisation_parent=DANG_BO,
            categories=("xay-dung-dang", "thoi-su", "thoi-su"),
        ),
        person("Pho.BiThu@Example.VN", display_name="Trần Văn Đức", organisation=VAN_PHONG),
        person(
            "tuyengiao@example.vn",
            display_name="Lê Hoàng Yến",
            organisation=TUYEN_GIAO,
            organisation_parent=DANG_BO,
            digest="weekly",
        ),
        person("ca.nhan@example.org", display_name="Phạm Quỳnh Anh"),
    ]


def test_upsert_inserts_with_tokens_and_lists_by_organisation(store: Store) -> None:
    assert store.upsert_subscribers(directory(), now=NOW) == SubscriberCounts(new=4)

    listed = store.list_subscribers()
    # Organisations by name with "Đ" among the D (after "Chi bộ..."), then address; none last.
    assert [(s.organisation, s.address) for s in listed] == [
        (TUYEN_GIAO, "tuyengiao@example.vn"),
        (VAN_PHONG, "bithu.vanphong@example.vn"),
        (VAN_PHONG, "pho.bithu@example.vn"),
        (None, "ca.nhan@example.org"),
    ]
    hoa = listed[1]
    assert hoa.display_name == "Nguyễn Thị Hoà"
    assert hoa.categories == ("thoi-su", "xay-dung-dang")
    assert (hoa.digest, hoa.status, hoa.bounces) == ("daily", "active", 0)
    assert (hoa.created, hoa.confirmed) == (NOW, NOW)
    tokens = {s.token for s in listed}
    assert len(tokens) == 4
    assert all(len(token) >= 43 and token.replace("-", "").replace("_", "").isalnum() for token in tokens)

    assert store.list_organisations() == [(TUYEN_GIAO, DANG_BO), (VAN_PHONG, DANG_BO), (DANG_BO, None)]
    assert [s.address for s in store.list_subscribers(organisation=VAN_PHONG)] == [
        "bithu.vanphong@example.vn",
        "pho.bithu@example.vn",
    ]
    assert [s.address for s in store.list_subscribers(digest="weekly")] == ["tuyengiao@example.vn"]
    assert store.list_subscribers(organisation=DANG_BO) == []  # only direct members
    assert store.count_subscribers_by_status() == {"pending": 0, "active": 4, "unsubscribed": 0, "bounced": 0}


def test_upsert_again_updates_changed_rows_only(store: Store) -> None:
    store.upsert_subscribers(directory(), now=NOW)
    before = {s.address: s for s in store.list_subscribers()}

    rows = directory()
    rows[1] = person("pho.bithu@example.vn", display_name="Trần Văn Đức", organisation=TUYEN_GIAO)
    rows[3] = person("ca.nhan@example.org", display_name="Phạm Quỳnh Anh", categories=("kinh-te",))
    assert store.upsert_subscribers(rows, now=LATER) == SubscriberCounts(updated=2, unchanged=2)
    after = {s.address: s for s in store.list_subscribers()}
    assert after["pho.bithu@example.vn"].organisation == TUYEN_GIAO
    assert after["ca.nhan@example.org"].categories == ("kinh-te",)
    # Tokens, creation times and confirmations never change on an upsert.
    for address, subscriber in after.items():
        assert (subscriber.id, subscriber.token, subscriber.created, subscriber.confirmed) == (
            before[address].id,
            before[address].token,
            NOW,
            NOW,
        )

    # The same address twice in one batch: the last row wins.
    twice = [person("hai@example.vn", display_name="Một"), person("HAI@example.vn", display_name="Hai")]
    assert store.upsert_subscribers(twice, now=LATER) == SubscriberCounts(new=1)
    found = store.get_subscriber(address="hai@example.vn")
    assert found is not None
    assert found.display_name == "Hai"
    assert store.upsert_subscribers([], now=LATER) == SubscriberCounts()


def test_upsert_never_reactivates_unsubscribed_or_bounced(store: Store) -> None:
    store.upsert_subscribers(directory(), now=NOW)
    hoa = store.get_subscriber(address="bithu.vanphong@example.vn")
    duc = store.get_subscriber(address="pho.bithu@example.vn")
    assert hoa is not None
    assert duc is not None
    store.unsubscribe(hoa.token, now=NOW)
    assert store.record_bounce(duc.id, threshold=1, now=NOW)

    rows = directory()
    rows[0] = person("bithu.vanphong@example.vn", display_name="Nguyễn Thị Hòa", organisation=VAN_PHONG)
    counts = store.upsert_subscribers(rows, now=LATER)
    assert counts == SubscriberCounts(unchanged=2, kept_unsubscribed=1, kept_bounced=1)
    assert counts.kept == 2
    hoa_after = store.get_subscriber(address="bithu.vanphong@example.vn")
    duc_after = store.get_subscriber(address="pho.bithu@example.vn")
    assert hoa_after is not None
    assert duc_after is not None
    assert hoa_after.status == "unsubscribed"
    assert duc_after.status == "bounced"
    # Its other fields still follow the directory.
    assert hoa_after.display_name == "Nguyễn Thị Hòa"
    assert hoa_after.categories == ()

    # Nor does add_subscriber, however the row says it.
    again = store.add_subscriber(person("PHO.BITHU@example.vn", status="active"), now=LATER)
    assert (again.id, again.status) == (duc.id, "bounced")

    # The directory may move an address to any status from pending or active.
    store.upsert_subscribers(
        [person("tuyengiao@example.vn", status="unsubscribed"), person("moi@example.vn", status="pending")],
        now=LATER,
    )
    assert store.count_subscribers_by_status() == {"pending": 1, "active": 1, "unsubscribed": 2, "bounced": 1}
    promoted = store.add_subscriber(person("moi@example.vn", status="active"), now=LATER)
    assert (promoted.status, promoted.confirmed) == ("active", LATER)


def test_organisation_parents(store: Store) -> None:
    store.add_subscriber(person("a@example.vn", organisation=VAN_PHONG), now=NOW)
    assert store.list_organisations() == [(VAN_PHONG, None)]
    # A parent named later is set, and a row without one leaves it as it is.
    store.add_subscriber(person("b@example.vn", organisation=VAN_PHONG, organisation_parent=DANG_BO), now=NOW)
    store.add_subscriber(person("c@example.vn", organisation=VAN_PHONG), now=NOW)
    store.add_subscriber(person("d@example.vn", organisation=DANG_BO, organisation_parent="Tỉnh uỷ"), now=NOW)
    assert store.list_organisations() == [(VAN_PHONG, DANG_BO), (DANG_BO, "Tỉnh uỷ"), ("Tỉnh uỷ", None)]
    # Names are cleaned: the same branch however the directory spaces it.
    store.add_subscriber(person("e@example.vn", organisation="  Chi bộ   Văn phòng "), now=NOW)
    assert len(store.list_subscribers(organisation=VAN_PHONG)) == 4

    # A cycle is refused, and nothing of the batch is saved.
    with pytest.raises(StoreError, match="cannot make 'Chi bộ Văn phòng' the parent of 'Tỉnh uỷ'"):
        store.upsert_subscribers(
            [
                person("f@example.vn"),
                person("g@example.vn", organisation="Tỉnh uỷ", organisation_parent=VAN_PHONG),
            ],
            now=NOW,
        )
    with pytest.raises(StoreError, match="parent of"):
        store.add_subscriber(
            person("h@example.vn", organisation="Tự nó", organisation_parent="Tự nó"), now=NOW
        )
    assert store.get_subscriber(address="f@example.vn") is None
    assert len(store.list_organisations()) == 3


def test_lookups_by_address_and_token(store: Store) -> None:
    added = store.add_subscriber(person("Nguyen.Thi.Hoa@Example.VN", display_name="Nguyễn Thị Hoà"), now=NOW)
    assert added.address == "nguyen.thi.hoa@example.vn"
    assert store.get_subscriber(address=" NGUYEN.thi.hoa@example.vn") == added
    assert store.get_subscriber(token=added.token) == added
    assert store.get_subscriber(token=added.token[:-1]) is None
    assert store.get_subscriber(token="") is None
    assert store.get_subscriber(address="khong.co@example.vn") is None
    other = store.add_subscriber(person("tran.van.duc@example.vn"), now=NOW)
    assert store.subscribers_by_ids([other.id, 10_000, added.id, other.id]) == [added, other]
    assert store.subscribers_by_ids([]) == []
    with pytest.raises(ValueError, match="exactly one"):
        store.get_subscriber()
    with pytest.raises(ValueError, match="exactly one"):
        store.get_subscriber(address=added.address, token=added.token)
    with pytest.raises(ValueError, match="category slug"):
        store.add_subscriber(person("x@example.vn", categories=("thoi su",)), now=NOW)

    assert store.remove_subscriber("NGUYEN.THI.HOA@example.vn")
    assert not store.remove_subscriber("nguyen.thi.hoa@example.vn")
    assert store.get_subscriber(token=added.token) is None


def confirm(store: Store, token: str, now: datetime) -> Subscriber | None:
    """Press the confirmation button; the subscriber if that confirmed it (or it was active)."""
    done = store.confirm(token, expiry=EXPIRY, now=now)
    return done.subscriber if done is not None and done.state == "confirmed" else None


def test_double_opt_in(store: Store) -> None:
    form = person("hoa@example.vn", display_name="Nguyễn Thị Hoà", categories=("thoi-su",), status="active")
    pending, needs = store.subscribe_pending(form, now=NOW)
    assert needs
    assert (pending.status, pending.confirmed, pending.categories) == ("pending", None, ("thoi-su",))
    assert pending.opt_in_requested == NOW

    # Pending again (the form sent twice): a new token, the first link no longer works.
    again, needs = store.subscribe_pending(form, now=NOW + timedelta(minutes=5))
    assert needs
    assert again.id == pending.id
    assert again.token != pending.token
    assert store.confirm(pending.token, expiry=EXPIRY, now=LATER) is None

    active = confirm(store, again.token, LATER)
    assert active is not None
    assert (active.status, active.confirmed, active.token) == ("active", LATER, again.token)
    assert active.opt_in_requested is None
    # What the person asked for on the form, and confirmed, is their choice from now on.
    assert (active.categories_chosen, active.digest_chosen) == (LATER, LATER)
    assert confirm(store, again.token, LATER + timedelta(days=1)) == active  # followed twice

    # The form cannot change an active subscriber: nothing to confirm, nothing changed.
    stranger = person("HOA@example.vn", display_name="Kẻ lạ", categories=("giai-tri",), digest="weekly")
    assert store.subscribe_pending(stranger, now=LATER) == (active, False)

    gone = store.unsubscribe(active.token, now=LATER)
    assert gone is not None
    assert gone.status == "unsubscribed"
    assert store.unsubscribe(active.token, now=LATER + timedelta(days=1)) == gone  # idempotent
    assert store.confirm(active.token, expiry=EXPIRY, now=LATER) is None

    # Subscribing again after unsubscribing opens a request with the form's preferences;
    # the address stays unsubscribed until the person confirms it.
    back, needs = store.subscribe_pending(
        person("hoa@example.vn", categories=("xay-dung-dang",), digest="weekly"), now=LATER
    )
    assert needs
    assert (back.status, back.categories, back.digest) == ("unsubscribed", ("xay-dung-dang",), "weekly")
    assert back.opt_in_requested == LATER
    assert (back.categories_chosen, back.digest_chosen) == (None, None)  # not hers until confirmed
    assert back.display_name == "Nguyễn Thị Hoà"  # the form left it empty
    assert back.token not in (active.token, again.token)
    assert store.get_subscriber(token=active.token) is None
    confirmed = confirm(store, back.token, LATER + timedelta(hours=1))
    assert confirmed is not None
    assert (confirmed.status, confirmed.confirmed) == ("active", LATER + timedelta(hours=1))


def test_bounced_address_stays_bounced(store: Store) -> None:
    subscriber = store.add_subscriber(person("hop.thu.day@example.vn", organisation=VAN_PHONG), now=NOW)
    assert not store.record_bounce(subscriber.id, threshold=3, now=NOW)
    assert not store.record_bounce(subscriber.id, threshold=3, now=NOW)
    assert store.record_bounce(subscriber.id, threshold=3, now=NOW)
    assert store.record_bounce(subscriber.id, threshold=3, now=NOW)
    bounced = store.get_subscriber(address="hop.thu.day@example.vn")
    assert bounced is not None
    assert (bounced.status, bounced.bounces) == ("bounced", 4)

    assert store.subscribe_pending(person("hop.thu.day@example.vn"), now=LATER) == (bounced, False)
    assert store.confirm(bounced.token, expiry=EXPIRY, now=LATER) is None
    assert not store.record_bounce(10_000, threshold=1, now=NOW)

    # The person's own word is the stronger one: an unsubscribed address stays unsubscribed.
    other = store.add_subscriber(person("khac@example.vn"), now=NOW)
    store.unsubscribe(other.token, now=NOW)
    assert not store.record_bounce(other.id, threshold=1, now=NOW)
    after = store.get_subscriber(token=other.token)
    assert after is not None
    assert (after.status, after.bounces) == ("unsubscribed", 1)
    # And a bounced person can still unsubscribe.
    unsubscribed = store.unsubscribe(bounced.token, now=LATER)
    assert unsubscribed is not None
    assert unsubscribed.status == "unsubscribed"


def test_preferences(store: Store) -> None:
    subscriber = store.add_subscriber(person("hoa@example.vn", categories=("thoi-su",)), now=NOW)
    changed = store.set_preferences(
        subscriber.token, categories=["xay-dung-dang", "kinh-te"], digest="weekly", now=LATER
    )
    assert changed is not None
    assert (changed.categories, changed.digest, changed.status) == (
        ("kinh-te", "xay-dung-dang"),
        "weekly",
        "active",
    )
    everything = store.set_preferences(subscriber.token, categories=[], digest="weekly", now=LATER)
    assert everything is not None
    assert everything.categories == ()
    assert store.set_preferences("khong-co", categories=[], digest="daily", now=LATER) is None
    # Preferences of an unsubscribed person are kept, and do not subscribe them again.
    store.unsubscribe(subscriber.token, now=LATER)
    kept = store.set_preferences(subscriber.token, categories=["thoi-su"], digest="daily", now=LATER)
    assert kept is not None
    assert (kept.status, kept.categories) == ("unsubscribed", ("thoi-su",))


def test_tokens_are_unique_across_many(store: Store) -> None:
    rows = [person(f"nguoi{i}@example.vn", organisation=f"Chi bộ {i % 7}") for i in range(1500)]
    assert store.upsert_subscribers(rows, now=NOW) == SubscriberCounts(new=1500)
    listed = store.list_subscribers()
    assert len({s.token for s in listed}) == 1500
    assert len(store.list_organisations()) == 7
    assert store.upsert_subscribers(rows, now=LATER) == SubscriberCounts(unchanged=1500)


def test_upgrade_0002_to_0003_keeps_articles_and_adds_subscribers(store_url: str) -> None:
    with Store(store_url) as store:
        with store._db.schema_transaction("upgrade to 0002") as connection:
            migrate.upgrade(connection, "0002")
        assert store.revision() == "0002"
        store.sync_sources(
            [
                SourceSpec(
                    id="dcs",
                    url="https://dangcongsan.vn/rss",
                    kind="feed",
                    categories=(),
                    interval=timedelta(hours=1),
                )
            ]
        )
        # Saved as syndication saved it at 0002 (the store's queries know the newest columns only).
        engine = sqlalchemy.create_engine(store_url, poolclass=NullPool)
        try:
            with engine.begin() as connection:
                connection.execute(
                    sqlalchemy.insert(articles).values(
                        id=1,
                        identity="url:https://dangcongsan.vn/1",
                        url="https://dangcongsan.vn/1",
                        title="Hội nghị Trung ương",
                        title_key="hội nghị trung ương",
                        search_text="hoi nghi trung uong",
                        published=NOW,
                        updated=NOW,
                        first_seen=NOW,
                        source_id="dcs",
                        content_hash="1",
                    )
                )
                connection.execute(
                    sqlalchemy.insert(article_categories).values(article_id=1, category="thoi-su")
                )
                connection.execute(sqlalchemy.insert(article_sources).values(article_id=1, source_id="dcs"))
                scopes = ("all", "category:thoi-su", "source:dcs")
                connection.execute(
                    sqlalchemy.insert(feed_scopes), [{"scope": n, "version": 1} for n in scopes]
                )
            assert "subscribers" not in sqlalchemy.inspect(engine).get_table_names()
        finally:
            engine.dispose()

        store.upgrade()
        assert store.revision() in head_revisions()
        (kept,) = store.list_articles(include_duplicates=True)
        assert (kept.id, kept.title, kept.published, kept.first_seen, kept.categories, kept.sources) == (
            1,
            "Hội nghị Trung ương",
            NOW,
            NOW,
            ("thoi-su",),
            ("dcs",),
        )
        assert store.changed_scopes(since=0) == (1, frozenset(scopes))
        assert store.list_subscribers() == []
        added = store.add_subscriber(person("hoa@example.vn", organisation=VAN_PHONG), now=NOW)
        assert isinstance(added, Subscriber)
        (article,) = store.digest_articles(
            categories=["thoi-su"], seen_after=NOW - timedelta(days=1), seen_until=NOW, limit=10
        )
        assert article.title == "Hội nghị Trung ương"
