"""`syndication serve` (a subprocess, real sockets) against clients that misbehave: numbers
too large for the store in a path, connections that never finish their request, headers
of megabytes, more connections than the server takes at once."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_cli import write_config
from tests.test_run import free_port, start, stop, wait_for

DIGEST = """
[mail]
maildir = "{outbox}"
[[digests]]
name = "daily"
title = "Bản tin hằng ngày"
schedule = "0 7 * * *"
"""


class Serve:
    """A running ``syndication --log-format json serve`` and what it logged."""

    def __init__(self, tmp_path: Path, store_url: str, extra: str = "") -> None:
        conf = write_config(tmp_path, store_url, DIGEST.format(outbox=tmp_path / "outbox") + extra)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "serve.log"
        self.proc = start(conf, "--log-format", "json", "serve", "--port", str(self.port), log=self.log)
        wait_for("the server to answer", self._up, seconds=60, proc=self.proc)

    def _up(self) -> bool:
        try:
            return httpx.get(self.base + "/", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def records(self) -> list[dict[str, object]]:
        lines = self.log.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self) -> None:
        assert stop(self.proc, signal.SIGINT) == 0, self.log.read_text()


@pytest.fixture
def serve(tmp_path: Path, store_url: str) -> Iterator[Serve]:
    running = Serve(tmp_path, store_url)
    yield running
    running.stop()


def test_issue_numbers_out_of_the_stores_range_are_not_found(serve: Serve) -> None:
    key = "0123456789abcdef0123"
    for issue in ("99999999999999999999999", str(2**63), str(2**31), "0", "1"):
        response = httpx.get(f"{serve.base}/ban-tin/{issue}/{key}", timeout=10)
        assert response.status_code == 404, (issue, response.text[:300])
        assert "Không tìm thấy trang" in response.text
    assert httpx.get(f"{serve.base}/ban-tin/99999999999999999999999/x", timeout=10).status_code == 404
    bad = [r for r in serve.records() if r["level"] in ("ERROR", "CRITICAL", "WARNING")]
    assert bad == []
