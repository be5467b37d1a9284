"""`syndication serve` as a subprocess answering /healthz and /metrics, with another
process polling into the same store."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.httpserver import TestServer
from tests.test_cli import syndication, write_config
from tests.test_core import ITEMS, rss
from tests.test_serve import free_port, wait_until


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def up(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def test_serve_answers_healthz_and_metrics(tmp_path: Path, store_url: str, server: TestServer) -> None:
    server.add("/tin.rss", rss(ITEMS))
    conf = write_config(
        tmp_path,
        store_url,
        f'[[sources]]\nid = "tin"\nurl = "{server.url("/tin.rss")}"\n'
        'categories = ["tin-tuc-su-kien"]\nallow_private_network = true\n',
    )
    port = free_port()
    command = [sys.executable, "-m", "syndication", "--config", str(conf), "--log-format", "json"]
    proc = subprocess.Popen(
        [*command, "serve", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            wait_until(lambda: up(http), "the server to answer /healthz")
            health = http.get("/healthz")
            assert health.headers["cache-control"] == "no-store"
            body = health.json()
            assert (body["status"], body["store"], body["scheduler"]) == ("ok", "ok", "absent")
            assert body["last_poll_age_seconds"] is None  # nothing polled yet

            assert syndication("fetch", config=conf).returncode == 0  # another process polls
            after = http.get("/healthz").json()
            assert after["last_poll_age_seconds"] is not None
            assert after["last_poll_age_seconds"] >= 0

            feed = http.get("/feeds/all.rss")
            assert (
                http.get("/feeds/all.rss", headers={"If-None-Match": feed.headers["etag"]}).status_code == 304
            )

            metrics = http.get("/metrics")
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
            found = samples(metrics.text)
            assert found[("syndication_feed_requests_total", (("status", "304"),))] == 1
            assert found[("syndication_feed_requests_total", (("status", "200"),))] >= 1
            assert found[("syndication_store_up", ())] == 1
            # Read from the store: what the other process polled.
            assert found[("syndication_articles", ())] == 2
            assert found[("syndication_source_consecutive_errors", (("source", "tin"),))] == 0
            assert ("syndication_source_last_success_timestamp_seconds", (("source", "tin"),)) in found
            # Counted by the process that polled, not this one.
            assert not any(name == "syndication_polls_total" for name, _ in found)
    finally:
        proc.send_signal(signal.SIGINT)
        _, errors = proc.communicate(timeout=20)
    assert proc.returncode == 0, errors
    for line in errors.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            assert {"time", "level", "logger", "message"} <= entry.keys()
    assert "Traceback" not in errors


def test_healthz_is_degraded_while_every_source_fails(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    # Both sources answer garbage: the service still serves what it has (200), but says
    # that nothing comes in; monitoring reads "status", load balancers keep routing to it.
    server.add("/tin.rss", b"Bao tri", content_type="text/plain")
    server.add("/xdd.rss", b"Bao tri", content_type="text/plain")
    sources = "".join(
        f'[[sources]]\nid = "{name}"\nurl = "{server.url(f"/{name}.rss")}"\n'
        'categories = ["tin-tuc-su-kien"]\nallow_private_network = true\n'
        for name in ("tin", "xdd")
    )
    conf = write_config(tmp_path, store_url, sources)
    port = free_port()
    command = [sys.executable, "-m", "syndication", "--config", str(conf), "serve", "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            wait_until(lambda: up(http), "the server to answer /healthz")
            fresh = http.get("/healthz").json()
            assert (fresh["status"], fresh["sources"], fresh["sources_failing"]) == ("ok", 2, 0)

            assert syndication("fetch", config=conf).returncode == 1  # every source failed
            degraded = http.get("/healthz")
            assert degraded.status_code == 200
            body = degraded.json()
            assert (body["status"], body["store"], body["sources"], body["sources_failing"]) == (
                "degraded",
                "ok",
                2,
                2,
            )

            server.add("/tin.rss", rss(ITEMS))  # one comes back: not degraded any more
            assert syndication("fetch", config=conf).returncode == 0
            back = http.get("/healthz")
            assert back.status_code == 200
            assert (back.json()["status"], back.json()["sources_failing"]) == ("ok", 1)
    finally:
        proc.send_signal(signal.SIGINT)
        _, errors = proc.communicate(timeout=20)
    assert proc.returncode == 0, errors
