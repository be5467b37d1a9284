"""Queries about sources: the configured list, and what each poll left behind.

Functions take a ``Connection`` already inside a transaction (``Store`` opens it
and translates errors); they neither commit nor catch. Writes assume the
store's write lock is held, so read-then-write is race-free.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Connection, bindparam, func, insert, select, update

from syndication.types import PollRecord, SourceKind, SourceSpec, SourceState

from .schema import article_sources, sources
from .util import chunks


def sync_sources(connection: Connection, specs: Iterable[SourceSpec]) -> None:
    """Insert new sources and update the URL and kind of known ones.

    A changed URL forgets the stored validators (they belonged to the old URL) and
    when the source started (``SourceState.started``: its first articles from the new
    address are a backlog again).
    Sources missing from ``specs`` are left alone: their articles stay.
    """
    wanted = {spec.id: spec for spec in specs}
    if not wanted:
        return
    ids = list(wanted)
    stored: dict[str, tuple[str, str]] = {}
    for part in chunks(ids):
        rows = connection.execute(
            select(sources.c.id, sources.c.url, sources.c.kind).where(sources.c.id.in_(part))
        )
        stored.update((row.id, (row.url, row.kind)) for row in rows)

    new = [
        {"id": spec.id, "url": spec.url, "kind": spec.kind}
        for spec in wanted.values()
        if spec.id not in stored
    ]
    moved: list[dict[str, Any]] = []
    rekinded: list[dict[str, Any]] = []
    for spec in wanted.values():
        if spec.id not in stored:
            continue
        url, kind = stored[spec.id]
        if url != spec.url:
            # A new address is a new source for digests too: what it lists at first is its backlog.
            moved.append(
                {
                    "b_id": spec.id,
                    "url": spec.url,
                    "kind": spec.kind,
                    "etag": None,
                    "last_modified": None,
                    "started": None,
                }
            )
        elif kind != spec.kind:
            rekinded.append({"b_id": spec.id, "kind": spec.kind})
    if new:
        connection.execute(insert(sources), new)
    for params in (moved, rekinded):
        if params:
            connection.execute(update(sources).where(sources.c.id == bindparam("b_id")), params)


def _state(row: Any) -> SourceState:
    return SourceState(
        id=row.id,
        url=row.url,
        kind=cast(SourceKind, row.kind),
        etag=row.etag,
        last_modified=row.last_modified,
        last_attempt=row.last_attempt,
        last_success=row.last_success,
        last_error=row.last_error,
        last_warning=row.last_warning,
        error_count=row.error_count,
        next_attempt=row.next_attempt,
        article_count=row.article_count,
        started=row.started,
    )


def source_states(connection: Connection, ids: Sequence[str] | None) -> dict[str, SourceState]:
    """The stored state of the given sources (all when ``ids`` is None); unknown ids are absent."""
    article_count = (
        select(func.count())
        .where(article_sources.c.source_id == sources.c.id)
        .scalar_subquery()
        .label("article_count")
    )
    query = select(sources, article_count).order_by(sources.c.id)
    if ids is None:
        return {row.id: _state(row) for row in connection.execute(query)}
    states: dict[str, SourceState] = {}
    for part in chunks(list(dict.fromkeys(ids))):
        states.update(
            (row.id, _state(row)) for row in connection.execute(query.where(sources.c.id.in_(part)))
        )
    return states


def record_polls(connection: Connection, records: Iterable[PollRecord]) -> None:
    """Persist the outcome of polls; records of unknown sources are ignored.

    When a source has several records, the last one wins.
    """
    latest = {record.source_id: record for record in records}
    # Rows of one executemany must have the same keys: group by which columns change.
    groups: dict[tuple[bool, bool], list[dict[str, Any]]] = {}
    for record in latest.values():
        params: dict[str, Any] = {
            "b_id": record.source_id,
            "last_attempt": record.attempted,
            "next_attempt": record.next_attempt,
            "error_count": record.error_count,
            "last_error": None if record.ok else (record.error or "unknown error"),
            # Recording the outcome ends the poll: the source's lease is given back.
            "lease_until": None,
            "lease_owner": None,
        }
        if record.ok:
            params["last_success"] = record.attempted
        if not record.keep_validators:
            # A poll that read the source says what its warnings are now (none clears them);
            # a 304 or an error leaves those of the last reading.
            params["etag"] = record.etag
            params["last_modified"] = record.last_modified
            params["last_warning"] = "\n".join(record.warnings) or None
        groups.setdefault((record.ok, record.keep_validators), []).append(params)
    statement = update(sources).where(sources.c.id == bindparam("b_id"))
    for params_list in groups.values():
        connection.execute(statement, params_list)
