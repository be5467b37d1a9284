"""Log output: the formatters through the real ``logging`` machinery, and the command's
``--log-format`` as a user runs it (a subprocess with stderr piped)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syndication import logs
from tests.httpserver import TestServer
from tests.test_cli import syndication, write_config
from tests.test_core import ITEMS, rss

VIETNAMESE = "Đồng chí Bí thư Tỉnh ủy thăm và làm việc tại huyện"


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def fail(error: Exception) -> None:
    raise error


def lines_of(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_lines_carry_the_fields_and_extras() -> None:
    stream = io.StringIO()
    logs.configure(level=logging.INFO, fmt="json", stream=stream)
    log = logging.getLogger("syndication.thu")
    before = datetime.now(UTC)
    log.info("nguồn %s: %s", "baochinhphu", VIETNAMESE, extra={"source": "baochinhphu", "new": 3})
    log.debug("not at this level")
    try:
        fail(RuntimeError("hỏng"))
    except RuntimeError:
        log.exception("poll failed", extra={"level": "mine", "at": timedelta(seconds=2)})

    first, second = (json.loads(line) for line in lines_of(stream))
    assert first["message"] == f"nguồn baochinhphu: {VIETNAMESE}"
    assert (first["level"], first["logger"], first["source"], first["new"]) == (
        "INFO",
        "syndication.thu",
        "baochinhphu",
        3,
    )
    assert "exception" not in first
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    written = datetime.fromisoformat(first["time"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) < written < datetime.now(UTC) + timedelta(seconds=1)
    assert VIETNAMESE in stream.getvalue()  # as it is, not \u escapes
    assert second["level"] == "ERROR"
    assert second["exception"].startswith("Traceback")
    assert "RuntimeError: hỏng" in second["exception"]
    assert second["extra_level"] == "mine"  # cannot hide the record's own level
    assert second["at"] == "0:00:02"  # any value is written, as text when JSON has no form for it


def test_json_is_utf8_even_on_a_stream_set_up_for_ascii() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii", errors="backslashreplace", write_through=True)
    logs.configure(level=logging.INFO, fmt="json", stream=stream)
    logging.getLogger("syndication.thu").warning(VIETNAMESE)
    stream.flush()
    assert json.loads(raw.getvalue().decode("utf-8"))["message"] == VIETNAMESE


def test_text_is_for_people() -> None:
    stream = io.StringIO()
    logs.configure(level=logging.WARNING, fmt="text", stream=stream)
    log = logging.getLogger("syndication.thu")
    log.info("hidden")
    log.warning("source %s failed", "hong", extra={"source": "hong", "errors": 2})
    try:
        fail(ValueError("x"))
    except ValueError:
        log.exception("with a traceback")
    text = stream.getvalue()
    first = text.splitlines()[0]
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d WARNING syndication\.thu: source hong failed source=hong errors=2", first
    )
    assert "hidden" not in text
    assert "ERROR syndication.thu: with a traceback\nTraceback" in text
    assert not any(line.startswith("{") for line in text.splitlines())


def test_auto_is_text_on_a_terminal_and_json_elsewhere() -> None:
    piped = io.StringIO()
    logs.configure(level=logging.INFO, fmt="auto", stream=piped)
    logging.getLogger("a").info("piped")
    assert json.loads(piped.getvalue())["message"] == "piped"

    primary, secondary = os.openpty()
    with open(secondary, "w", encoding="utf-8", closefd=True) as terminal:
        logs.configure(level=logging.INFO, fmt="auto", stream=terminal)
        logging.getLogger("a").info("on a terminal")
        terminal.flush()
        shown = os.read(primary, 4096).decode()
    os.close(primary)
    assert "INFO a: on a terminal" in shown
    assert "{" not in shown


def test_configure_again_replaces_its_own_handler_only() -> None:
    other = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(other)
    first, second = io.StringIO(), io.StringIO()
    logs.configure(level=logging.INFO, fmt="json", stream=first)
    logs.configure(level=logging.INFO, fmt="json", stream=second)
    logging.getLogger("a").info("once")
    assert first.getvalue() == ""
    assert len(lines_of(second)) == 1
    assert other in logging.getLogger().handlers


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        logs.configure(level=logging.INFO, fmt="xml")


# --- the command -------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


def fetch_config(tmp_path: Path, server: TestServer) -> Path:
    """One source; SQLite only, as logging has nothing to do with the backend."""
    server.add("/tin.rss", rss(ITEMS))
    return write_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'syndication.db'}",
        f'[[sources]]\nid = "tin"\nurl = "{server.url("/tin.rss")}"\n'
        'categories = ["tin-tuc-su-kien"]\nallow_private_network = true\n',
    )


@pytest.mark.parametrize("option", [["--log-format", "json"], []], ids=["json", "auto-piped"])
def test_command_logs_json_lines(tmp_path: Path, server: TestServer, option: list[str]) -> None:
    conf = fetch_config(tmp_path, server)
    result = syndication(*option, "--verbose", "fetch", config=conf)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines, "nothing logged"
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
        assert entry["time"].endswith("Z")
    requests = [e for e in entries if e["logger"] == "httpx"]
    assert requests, entries
    assert requests[0]["level"] == "INFO"
    assert server.url("/tin.rss") in requests[0]["message"]
    assert "tin" in result.stdout  # the table for people is still on stdout


def test_command_logs_text_when_asked(tmp_path: Path, server: TestServer) -> None:
    conf = fetch_config(tmp_path, server)
    result = syndication("--log-format", "text", "--verbose", "fetch", config=conf)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^\d\d:\d\d:\d\d INFO httpx: HTTP Request: GET ", result.stderr, re.MULTILINE)
    assert not any(line.lstrip().startswith("{") for line in result.stderr.splitlines())


def test_log_format_must_be_known(tmp_path: Path) -> None:
    result = syndication("--log-format", "xml", "config", "check")
    assert result.returncode == 2
    assert "auto|json|text" in result.stderr or "'xml'" in result.stderr
