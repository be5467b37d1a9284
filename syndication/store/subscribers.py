"""Queries about organisations and subscribers: the directory's upsert, the steps of
double opt-in behind the web pages, unsubscribing, bounces, and the clean-up of
opt-in requests that expired.

Which status an event leads to is ``policy.lifecycle``'s rule, applied here inside
the transaction; the rest is documented on the ``Store`` methods. The one that
matters most: an address that unsubscribed or bounced is never made active again by
the directory or by the public form; only the person, by confirming a new opt-in,
can do that. The second: what a person chose for themselves (categories, digest)
wins over the directory, and the import reports where they differ.

Addresses are stored lower-cased (one subscriber per mailbox, however it is
spelled); organisation names are cleaned like any one-line field (NFC,
whitespace collapsed). Categories are kept as one text of sorted slugs separated
by spaces: always read and written whole, and equal texts mean equal selections,
which is what a digest groups subscribers by.

Tokens are ``secrets.token_urlsafe(32)`` (256 random bits): minted on insert and
again at every new opt-in request, so an old confirmation link stops working.

Functions take a ``Connection`` already inside a transaction (``Store`` opens it,
holds the write lock and translates errors); they neither commit nor catch, and
read-then-write is race-free under the write lock.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, cast

from sqlalchemy import Connection, Select, bindparam, delete, func, insert, select, update

from syndication import text
from syndication.errors import StoreError
from syndication.policy import lifecycle
from syndication.types import Confirmation, Subscriber, SubscriberData, SubscriberStatus

from .schema import SUBSCRIBER_STATUSES, organisations, subscribers
from .util import chunks, name_order

PreferenceField = Literal["categories", "digest"]
PERSONAL: Final[tuple[PreferenceField, ...]] = ("categories", "digest")
"""The fields the preferences page sets: once the person set one, it is theirs."""

_STATUS_COLUMNS: Final = ("status", "status_changed", "confirmed", "opt_in_requested")
"""What the lifecycle decides; a directory row's fields never write these directly."""

Row = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class PreferenceConflict:
    """A field the person set themselves, which a directory row would have changed: kept."""

    address: str
    field: PreferenceField
    directory: str
    """What the row says (categories: slugs separated by spaces, "" for all)."""
    chosen: str
    """What the person chose, which stays."""
    chosen_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriberCounts:
    """What an upsert of the directory did, one count per distinct address."""

    new: int = 0
    updated: int = 0
    """Existing addresses with a field changed."""
    unchanged: int = 0
    kept_unsubscribed: int = 0
    """Addresses that unsubscribed, whose status the row would have changed: they stay
    unsubscribed (their other fields may have been updated)."""
    kept_bounced: int = 0
    """The same for bounced addresses."""
    conflicts: tuple[PreferenceConflict, ...] = ()
    """Fields the person chose, kept against the row, by address."""

    @property
    def kept(self) -> int:
        """Addresses whose status was kept against the row."""
        return self.kept_unsubscribed + self.kept_bounced


def normalise_address(address: str) -> str:
    """The stored form of an address: trimmed and lower-cased."""
    return address.strip().lower()


def new_token() -> str:
    """A personal link's token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def _categories_text(categories: Iterable[str]) -> str:
    slugs = sorted(set(categories))
    for slug in slugs:
        if not slug or slug != "".join(slug.split()):
            raise ValueError(f"not a category slug: {slug!r}")
    return " ".join(slugs)


def _organisation_name(name: str | None) -> str | None:
    cleaned = text.clean_line(name, limit=200) if name else ""
    return cleaned or None


_COLUMNS = (
    subscribers.c.id,
    subscribers.c.address,
    subscribers.c.display_name,
    organisations.c.name.label("organisation"),
    subscribers.c.categories,
    subscribers.c.digest,
    subscribers.c.status,
    subscribers.c.token,
    subscribers.c.created,
    subscribers.c.confirmed,
    subscribers.c.bounces,
    subscribers.c.opt_in_requested,
    subscribers.c.categories_chosen,
    subscribers.c.digest_chosen,
)


def _select() -> Select[Any]:
    joined = subscribers.outerjoin(organisations, subscribers.c.organisation_id == organisations.c.id)
    return select(*_COLUMNS).select_from(joined)


def _subscriber(row: Any) -> Subscriber:
    return Subscriber(
        id=row.id,
        address=row.address,
        display_name=row.display_name,
        organisation=row.organisation,
        categories=tuple(row.categories.split()),
        digest=row.digest,
        status=cast(SubscriberStatus, row.status),
        token=row.token,
        created=row.created,
        confirmed=row.confirmed,
        bounces=row.bounces,
        opt_in_requested=row.opt_in_requested,
        categories_chosen=row.categories_chosen,
        digest_chosen=row.digest_chosen,
    )


def _read_one(connection: Connection, query: Select[Any]) -> Subscriber | None:
    row = connection.execute(query).first()
    return None if row is None else _subscriber(row)


def _by_id(connection: Connection, subscriber_id: int) -> Subscriber:
    found = _read_one(connection, _select().where(subscribers.c.id == subscriber_id))
    assert found is not None
    return found


def _stored(connection: Connection, addresses: Sequence[str]) -> dict[str, Row]:
    """The stored rows (every column) of the given addresses, by address."""
    stored: dict[str, Row] = {}
    for part in chunks(addresses):
        for mapping in connection.execute(
            select(subscribers).where(subscribers.c.address.in_(part))
        ).mappings():
            stored[mapping["address"]] = dict(mapping)
    return stored


# --- organisations -------------------------------------------------------------------


def _organisation_ids(connection: Connection, rows: Iterable[SubscriberData]) -> dict[str, int]:
    """The ids of every organisation the rows name, by name: missing ones (and missing
    parents) are created, and each named parent becomes its organisation's parent.

    Raises:
        StoreError: a parent would make an organisation its own ancestor.
    """
    parents: dict[str, str] = {}
    names: set[str] = set()
    for row in rows:
        name = _organisation_name(row.organisation)
        if name is None:
            continue  # a parent alone says nothing about this subscriber
        names.add(name)
        parent = _organisation_name(row.organisation_parent)
        if parent is not None:
            names.add(parent)
            parents[name] = parent
    if not names:
        return {}
    ids: dict[str, int] = {}
    for part in chunks(sorted(names)):
        query = select(organisations.c.name, organisations.c.id).where(organisations.c.name.in_(part))
        ids.update((name, id) for name, id in connection.execute(query))
    missing = [{"name": name} for name in sorted(names) if name not in ids]
    if missing:
        inserted = connection.execute(
            insert(organisations).returning(organisations.c.name, organisations.c.id), missing
        )
        ids.update((name, id) for name, id in inserted)
    if parents:
        _set_parents(connection, {ids[name]: ids[parent] for name, parent in parents.items()}, ids)
    return ids


def _set_parents(connection: Connection, wanted: Mapping[int, int], ids: Mapping[str, int]) -> None:
    # The whole tree is a few hundred rows at most: check it in memory.
    tree: dict[int, int | None] = dict(
        connection.execute(select(organisations.c.id, organisations.c.parent_id)).all()
    )
    names = {id: name for name, id in ids.items()}
    changed: list[Row] = []
    for child, parent in wanted.items():
        if tree.get(child) == parent:
            continue
        ancestor: int | None = parent
        while ancestor is not None:
            if ancestor == child:
                raise StoreError(
                    f"cannot make {names[parent]!r} the parent of {names[child]!r}: "
                    f"{names[parent]!r} belongs to {names[child]!r}"
                )
            ancestor = tree.get(ancestor)
        tree[child] = parent
        changed.append({"b_id": child, "parent_id": parent})
    if changed:
        connection.execute(update(organisations).where(organisations.c.id == bindparam("b_id")), changed)


def list_organisations(connection: Connection) -> list[tuple[str, str | None]]:
    """Every organisation as ``(name, parent name or None)``, by ``util.name_order``."""
    parent = organisations.alias("parent")
    query = select(organisations.c.name, parent.c.name).select_from(
        organisations.outerjoin(parent, organisations.c.parent_id == parent.c.id)
    )
    found: list[tuple[str, str | None]] = [(name, parent) for name, parent in connection.execute(query)]
    found.sort(key=lambda pair: name_order(pair[0]))
    return found


# --- the directory -----------------------------------------------------------------


def _status_fields(stored: Mapping[str, Any] | None, status: str, now: datetime) -> Row:
    """The status columns of an address that moves to ``status`` (``confirmed``: the first
    time it becomes active, when the publisher vouches for it)."""
    confirmed = None if stored is None else stored["confirmed"]
    if status == "active" and confirmed is None:
        confirmed = now
    return {"status": status, "status_changed": now, "confirmed": confirmed}


def _new_row(address: str, fields: Mapping[str, Any], status: str, now: datetime) -> Row:
    if status not in SUBSCRIBER_STATUSES:
        raise ValueError(f"not a subscriber status: {status!r}")
    return {
        "address": address,
        **fields,
        **_status_fields(None, status, now),
        "token": new_token(),
        "created": now,
        "updated": now,
        "bounces": 0,
    }


def _fields(row: SubscriberData, organisation_ids: Mapping[str, int]) -> Row:
    name = _organisation_name(row.organisation)
    return {
        "display_name": row.display_name,
        "organisation_id": None if name is None else organisation_ids[name],
        "categories": _categories_text(row.categories),
        "digest": row.digest,
    }


def upsert_subscribers(
    connection: Connection,
    rows: Sequence[SubscriberData],
    *,
    now: datetime,
    event: Literal["import", "add"] = "import",
) -> SubscriberCounts:
    """Insert or update subscribers by address; see ``Store.upsert_subscribers``.

    Raises:
        StoreError: an organisation would become its own ancestor.
        ValueError: a row's status is unknown, or a category is not a slug.
    """
    batch = {normalise_address(row.address): row for row in rows}  # the last row of an address wins
    if not batch:
        return SubscriberCounts()
    for row in batch.values():
        if row.status not in SUBSCRIBER_STATUSES:
            raise ValueError(f"not a subscriber status: {row.status!r}")
    organisation_ids = _organisation_ids(connection, batch.values())
    stored = _stored(connection, list(batch))
    inserts: list[Row] = []
    updates: list[Row] = []
    counts = dict.fromkeys(("new", "updated", "unchanged", "kept_unsubscribed", "kept_bounced"), 0)
    conflicts: list[PreferenceConflict] = []
    for address, row in batch.items():
        fields = _fields(row, organisation_ids)
        old = stored.get(address)
        step = lifecycle.step(None if old is None else old["status"], event, wanted=row.status)
        if old is None:
            inserts.append(_new_row(address, fields, step.status, now))
            counts["new"] += 1
            continue
        conflicts.extend(_keep_chosen(address, fields, old))
        changed = any(old[name] != value for name, value in fields.items())
        merged = {**fields, **{name: old[name] for name in _STATUS_COLUMNS}}
        if step.status != old["status"]:
            merged.update(_status_fields(old, step.status, now))
            changed = True
        if step.request == "close" and old["opt_in_requested"] is not None:
            merged["opt_in_requested"] = None
            changed = True
        if changed:
            updates.append({"b_id": old["id"], **merged, "updated": now})
        if step.kept:
            counts[f"kept_{old['status']}"] += 1
        else:
            counts["updated" if changed else "unchanged"] += 1
    if inserts:
        connection.execute(insert(subscribers), inserts)
    if updates:
        connection.execute(update(subscribers).where(subscribers.c.id == bindparam("b_id")), updates)
    return SubscriberCounts(**counts, conflicts=tuple(conflicts))


def _keep_chosen(address: str, fields: Row, old: Mapping[str, Any]) -> list[PreferenceConflict]:
    """Put back into ``fields`` what the person chose themselves; the conflicts with the row."""
    conflicts: list[PreferenceConflict] = []
    for name in PERSONAL:
        chosen_at = old[f"{name}_chosen"]
        if chosen_at is None:
            continue
        if fields[name] != old[name]:
            conflicts.append(
                PreferenceConflict(
                    address=address, field=name, directory=fields[name], chosen=old[name], chosen_at=chosen_at
                )
            )
        fields[name] = old[name]
    return conflicts


def get_by_address(connection: Connection, address: str) -> Subscriber | None:
    """The subscriber with this address (any case), or None."""
    return _read_one(connection, _select().where(subscribers.c.address == normalise_address(address)))


def get_by_token(connection: Connection, token: str) -> Subscriber | None:
    """The subscriber with this token, or None."""
    return _read_one(connection, _select().where(subscribers.c.token == token))


def by_ids(connection: Connection, ids: Sequence[int]) -> list[Subscriber]:
    """The subscribers with these ids, by id; unknown ids are left out."""
    found: list[Subscriber] = []
    for part in chunks(sorted(set(ids))):
        found.extend(
            _subscriber(row) for row in connection.execute(_select().where(subscribers.c.id.in_(part)))
        )
    return sorted(found, key=lambda subscriber: subscriber.id)


def remove_subscriber(connection: Connection, address: str) -> bool:
    """Delete a subscriber (its deliveries keep their copies, subscriber_id becomes NULL)."""
    deleted = connection.execute(
        subscribers.delete().where(subscribers.c.address == normalise_address(address))
    )
    return deleted.rowcount > 0


def list_subscribers(
    connection: Connection, *, status: str | None, digest: str | None, organisation: str | None
) -> list[Subscriber]:
    """Subscribers by organisation (by ``util.name_order``, none last), then address."""
    query = _select()
    if status is not None:
        query = query.where(subscribers.c.status == status)
    if digest is not None:
        query = query.where(subscribers.c.digest == digest)
    if organisation is not None:
        query = query.where(organisations.c.name == _organisation_name(organisation))
    found = [_subscriber(row) for row in connection.execute(query)]
    # Sorted here, not by the database: collations differ between backends and locales.
    found.sort(key=lambda s: (s.organisation is None, name_order(s.organisation or ""), s.address))
    return found


def count_by_status(connection: Connection) -> dict[str, int]:
    """Subscribers per status, every status present (0 when none)."""
    counts = dict.fromkeys(SUBSCRIBER_STATUSES, 0)
    query = select(subscribers.c.status, func.count()).group_by(subscribers.c.status)
    counts.update((status, int(count)) for status, count in connection.execute(query))
    return counts


# --- the web pages and bounces -----------------------------------------------------------


def _write(connection: Connection, subscriber_id: int, values: Mapping[str, Any]) -> Subscriber:
    connection.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(**values))
    return _by_id(connection, subscriber_id)


def subscribe_pending(
    connection: Connection, row: SubscriberData, *, now: datetime
) -> tuple[Subscriber, bool]:
    """Open an opt-in request for an address from the public form; see ``Store.subscribe_pending``."""
    address = normalise_address(row.address)
    old = _stored(connection, [address]).get(address)
    step = lifecycle.step(None if old is None else old["status"], "subscribe")
    if step.request != "open":
        assert old is not None
        return _by_id(connection, old["id"]), False
    # Someone may type any address into the form: it gets only a confirmation message,
    # and the organisation stays as the directory said when the form gives none.
    fields = _fields(row, _organisation_ids(connection, [row]))
    if old is None:
        values = {**_new_row(address, fields, step.status, now), "opt_in_requested": now}
        connection.execute(insert(subscribers), [values])
        found = get_by_address(connection, address)
        assert found is not None
        return found, True
    if fields["organisation_id"] is None:
        fields["organisation_id"] = old["organisation_id"]
    if not fields["display_name"]:
        fields["display_name"] = old["display_name"]
    values = {**fields, "token": new_token(), "opt_in_requested": now, "updated": now}
    if step.status != old["status"]:
        values.update(status=step.status, status_changed=now)
    for name in PERSONAL:
        # What the form asks for is not the person's choice until they confirm it.
        if fields[name] != old[name]:
            values[f"{name}_chosen"] = None
    return _write(connection, old["id"], values), True


def confirmation(
    connection: Connection, token: str, *, expiry: timedelta, now: datetime
) -> Confirmation | None:
    """Where the token's confirmation link stands (``lifecycle.confirmation_state``); None
    for an unknown token or a link that leads nowhere."""
    found = get_by_token(connection, token)
    if found is None:
        return None
    state = lifecycle.confirmation_state(found.status, found.opt_in_requested, now=now, expiry=expiry)
    return None if state is None else Confirmation(subscriber=found, state=state)


def confirm(connection: Connection, token: str, *, expiry: timedelta, now: datetime) -> Confirmation | None:
    """Press the confirmation button; see ``Store.confirm``."""
    found = confirmation(connection, token, expiry=expiry, now=now)
    if found is None or found.state != "open":
        return found
    subscriber = found.subscriber
    step = lifecycle.step(subscriber.status, "confirm", request_open=True)
    values: Row = {
        "status": step.status,
        "status_changed": now,
        "confirmed": now,
        "opt_in_requested": None,
        "updated": now,
        # The person confirmed what they asked for on the form: their choice from now on.
        **{f"{name}_chosen": now for name in PERSONAL},
    }
    return Confirmation(subscriber=_write(connection, subscriber.id, values), state="confirmed")


def set_preferences(
    connection: Connection, token: str, *, categories: Sequence[str], digest: str, now: datetime
) -> Subscriber | None:
    """Change categories and digest of the token's subscriber (status unchanged), marking each
    field that changes as the person's choice; None if the token is unknown."""
    found = get_by_token(connection, token)
    if found is None:
        return None
    wanted: Row = {"categories": _categories_text(categories), "digest": digest}
    current = {"categories": " ".join(found.categories), "digest": found.digest}
    changed = [name for name in PERSONAL if wanted[name] != current[name]]
    if not changed:
        return found
    values: Row = {name: wanted[name] for name in changed}
    values.update({f"{name}_chosen": now for name in changed})
    return _write(connection, found.id, {**values, "updated": now})


def unsubscribe(connection: Connection, token: str, *, now: datetime) -> Subscriber | None:
    """Make the token's subscriber unsubscribed (from any status; again is a no-op) and close
    any opt-in request; None if the token is unknown."""
    found = get_by_token(connection, token)
    if found is None:
        return None
    step = lifecycle.step(found.status, "unsubscribe")
    if found.status == step.status and found.opt_in_requested is None:
        return found
    values: Row = {"status": step.status, "opt_in_requested": None, "updated": now}
    if found.status != step.status:
        values["status_changed"] = now
    return _write(connection, found.id, values)


def record_bounce(connection: Connection, subscriber_id: int, *, threshold: int, now: datetime) -> bool:
    """Count a permanent failure; from ``threshold`` on, a ``bounce`` of the lifecycle.
    Whether the subscriber is now bounced."""
    row = connection.execute(
        select(subscribers.c.status, subscribers.c.bounces).where(subscribers.c.id == subscriber_id)
    ).first()
    if row is None:
        return False
    values: Row = {"bounces": row.bounces + 1, "updated": now}
    status = row.status
    if values["bounces"] >= threshold:
        step = lifecycle.step(row.status, "bounce")
        if step.status != row.status:
            status = step.status
            values.update(status=status, status_changed=now)
        if step.request == "close":
            values["opt_in_requested"] = None
    connection.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(**values))
    return bool(status == "bounced")


def expire_requests(connection: Connection, *, before: datetime) -> int:
    """The clean-up of opt-in requests made before ``before`` (``lifecycle.stale_request``):
    delete the pending addresses never confirmed, close the others' requests. How many
    addresses were deleted."""
    c = subscribers.c
    stale = connection.execute(select(c.id, c.status, c.confirmed).where(c.opt_in_requested < before)).all()
    doomed = [
        r.id
        for r in stale
        if lifecycle.stale_request(r.status, ever_confirmed=r.confirmed is not None) == "delete"
    ]
    closed = sorted({r.id for r in stale} - set(doomed))
    for part in chunks(closed):
        connection.execute(update(subscribers).where(c.id.in_(part)).values(opt_in_requested=None))
    deleted = 0
    for part in chunks(doomed):
        deleted += int(connection.execute(delete(subscribers).where(c.id.in_(part))).rowcount or 0)
    return deleted
