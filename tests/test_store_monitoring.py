"""The store's monitoring queries: ``ping`` and deliveries per status over every issue."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from datetime import timedelta

import pytest
from sqlalchemy import make_url

from syndication.errors import StoreError
from syndication.store import Store
from tests.conftest import POSTGRES_URL_ENV
from tests.test_store_deliveries import LEASE, NOW, new, subscribers


def test_ping_answers_on_a_working_store(store: Store) -> None:
    store.ping()


def test_ping_needs_no_tables(store_url: str) -> None:
    with Store(store_url) as fresh:  # never upgraded
        fresh.ping()


def test_ping_of_a_store_that_cannot_answer_is_a_store_error(store_url: str) -> None:
    store = Store(store_url)
    store.close()
    with pytest.raises(StoreError, match="reach the database"):
        store.ping()


def test_deliveries_counted_over_every_issue(store: Store) -> None:
    assert store.count_deliveries_by_status() == {
        "pending": 0,
        "sending": 0,
        "sent": 0,
        "retrying": 0,
        "failed": 0,
        "superseded": 0,
    }
    people = subscribers(store, 4)
    first, _ = store.create_issue("daily", NOW - timedelta(days=1), now=NOW)
    second, _ = store.create_issue("weekly", NOW, now=NOW)
    store.add_deliveries(first.id, [new(first.id, p) for p in people], now=NOW)
    store.add_deliveries(second.id, [new(second.id, p) for p in people[:3]], now=NOW)
    claimed = store.claim_deliveries(issue_id=first.id, limit=4, lease=LEASE, owner="a", now=NOW)
    store.mark_sent([claimed[0].id, claimed[1].id], owner="a", now=NOW)
    store.mark_failed(claimed[2].id, owner="a", error="550 no such user", now=NOW)
    store.mark_retry(claimed[3].id, owner="a", error="451 later", next_attempt=NOW + LEASE, now=NOW)
    store.claim_deliveries(issue_id=second.id, limit=1, lease=LEASE, owner="b", now=NOW)

    counts = store.count_deliveries_by_status()
    assert counts == {"pending": 2, "sending": 1, "sent": 2, "retrying": 1, "failed": 1, "superseded": 0}
    assert sum(counts.values()) == 7
    # The per-issue counts add up to the total.
    per_issue = [store.delivery_counts(first.id), store.delivery_counts(second.id)]
    assert {status: sum(c[status] for c in per_issue) for status in counts} == counts


class _Proxy:
    """A TCP relay to ``target`` on a loopback port: stopping it is the database going away."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # the listener was closed: stop
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:  # either side closed: this direction is done
            pass

    def stop(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.mark.postgres
def test_ping_after_the_database_went_away_is_a_store_error() -> None:
    base = os.environ.get(POSTGRES_URL_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set")
    url = make_url(base)
    proxy = _Proxy((url.host or "127.0.0.1", url.port or 5432))
    try:
        relayed = url.set(host="127.0.0.1", port=proxy.port, query={"connect_timeout": "2"})
        with Store(relayed.render_as_string(hide_password=False)) as store:
            store.ping()
            proxy.stop()
            # The pool finds its connection dead and fails to open another one.
            with pytest.raises(StoreError, match="cannot open database"):
                store.ping()
    finally:
        proxy.stop()
