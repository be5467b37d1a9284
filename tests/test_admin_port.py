"""``[server] admin_port``: ``/healthz`` and ``/metrics`` on an address of their own, not on
the public port, with `serve` and `run` as subprocesses."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import httpx
import pytest

from tests.test_cli import write_config
from tests.test_run import free_port, start, stop, wait_for
from tests.test_web_operations import samples


@pytest.mark.parametrize("command", ["serve", "run"])
def test_health_and_metrics_only_on_the_admin_port(tmp_path: Path, command: str) -> None:
    port, admin = free_port(), free_port()
    conf = write_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'syndication.db'}",
        f'[server]\nport = {port}\nadmin_port = {admin}\n[service]\ntick = "1s"\n',
    )
    log = tmp_path / "service.log"
    proc = start(conf, command, log=log)
    public, private = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}"
    try:

        def up() -> bool:
            try:
                return httpx.get(private + "/healthz", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_for("the admin port", up, seconds=60, proc=proc)
        wait_for("the start lines", lambda: "health and metrics at" in log.read_text(), seconds=30, proc=proc)
        assert httpx.get(public + "/feeds/all.rss", timeout=10).status_code == 200
        for path in ("/healthz", "/metrics"):
            assert httpx.get(public + path, timeout=10).status_code == 404, path
        assert httpx.get(private + "/feeds/all.rss", timeout=10).status_code == 404

        health = httpx.get(private + "/healthz", timeout=10).json()
        assert health["status"] == "ok"
        assert health["scheduler"] == ("alive" if command == "run" else "absent")
        metrics = samples(httpx.get(private + "/metrics", timeout=10).text)
        # One process, one set of counters: the public port's feed answers are counted here.
        assert metrics[("syndication_feed_requests_total", (("status", "200"),))] == 1
        assert metrics[("syndication_store_up", ())] == 1
    finally:
        assert stop(proc, signal.SIGINT) == 0, log.read_text()
    assert f"health and metrics at http://127.0.0.1:{admin}/healthz and /metrics" in log.read_text()


def test_an_admin_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    conf = write_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'syndication.db'}",
        f"[server]\nport = {port}\nadmin_port = {admin}\n",
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", admin))
        taken.listen()
        proc = start(conf, "serve", log=tmp_path / "serve.log")
        assert proc.wait(timeout=60) == 1
    text = (tmp_path / "serve.log").read_text()
    assert f"error: cannot listen on 127.0.0.1:{admin}: Address already in use" in text
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=5)  # the public port was let go too
