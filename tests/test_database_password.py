"""The database password never reaches an output: the CLI as a subprocess (``config check``,
``db upgrade``, the start lines of ``serve``, a store that refuses), stdout, stderr and JSON logs.

The password is given the two ways libpq takes it: in the URL's user part, with a ``/``
in it (which a hand-written pattern took for the end of the password), and as
``?password=``. PostgreSQL here trusts local connections, so it accepts any password.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from syndication.store.engine import display_url
from tests.test_cli import syndication, write_config
from tests.test_run import free_port, start, stop, wait_for

PASSWORD = "Mat/Khau-bi-mat-2026"
"""What must never be printed, nor its parts around the slash."""
SECRET_PARTS = ("Khau-bi-mat", "Mat/Khau", "Mat%2FKhau")


def with_password(url: str, how: str) -> str:
    """``url`` (``postgresql+psycopg://user@host...``) with ``PASSWORD`` in it, ``how`` = user or query."""
    if how == "user":
        scheme, _, rest = url.partition("://")
        user, _, host = rest.partition("@")
        return f"{scheme}://{user}:{PASSWORD}@{host}"
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}password={PASSWORD.replace('/', '%2F')}"


def assert_no_password(*outputs: str) -> None:
    for output in outputs:
        for part in SECRET_PARTS:
            assert part not in output, output


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://u:Mat/Khau-bi-mat-2026@db.example.vn:5432/tin",
            "postgresql+psycopg://u:***@db.example.vn:5432/tin",
        ),
        (
            "postgresql+psycopg://u@db.example.vn/tin?password=Mat%2FKhau-bi-mat-2026&sslmode=require",
            "postgresql+psycopg://u@db.example.vn/tin?sslmode=require",
        ),
        (
            "postgresql+psycopg://u@db/tin?sslpassword=Khau-bi-mat&PASSWORD=Khau-bi-mat",
            "postgresql+psycopg://u@db/tin",
        ),
        ("sqlite:////srv/tin.db", "sqlite:////srv/tin.db"),
        ("postgresql+psycopg://u:Khau-bi-mat@db:5x/tin", "postgresql+psycopg://… (not a valid URL)"),
        ("Khau-bi-mat", "(not a valid URL)"),
    ],
)
def test_display_url(url: str, shown: str) -> None:
    assert display_url(url) == shown


@pytest.mark.parametrize("how", ["user", "query"])
def test_config_check_and_a_refusing_store_print_no_password(tmp_path: Path, how: str) -> None:
    # Nothing listens on port 1: the store refuses, and the error names the database.
    conf = write_config(tmp_path, with_password("postgresql+psycopg://syndication@127.0.0.1:1/tin", how), "")

    checked = syndication("config", "check", config=conf)
    assert checked.returncode == 0, checked.stderr
    assert "store postgresql+psycopg://syndication" in checked.stdout
    assert_no_password(checked.stdout, checked.stderr)

    for args in (("db", "upgrade"), ("--log-format", "json", "-v", "status")):
        refused = syndication(*args, config=conf)
        assert refused.returncode == 1, refused.stdout
        assert "cannot open database postgresql+psycopg://syndication" in refused.stderr
        assert_no_password(refused.stdout, refused.stderr)


@pytest.mark.parametrize("how", ["user", "query"])
def test_upgrade_and_serve_print_no_password(tmp_path: Path, postgres_url: str, how: str) -> None:
    conf = write_config(tmp_path, with_password(postgres_url, how), "")

    upgraded = syndication("db", "upgrade", config=conf)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "is at revision" in upgraded.stdout
    checked = syndication("config", "check", config=conf)
    assert_no_password(upgraded.stdout, upgraded.stderr, checked.stdout, checked.stderr)

    log = tmp_path / "serve.log"
    proc = start(conf, "--log-format", "json", "serve", "--port", str(free_port()), log=log)
    try:
        wait_for("the start lines", lambda: "store: " in log.read_text(), seconds=30, proc=proc)
    finally:
        assert stop(proc, signal.SIGINT) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(line["message"].startswith("store: postgresql+psycopg://") for line in lines), lines
    assert_no_password(log.read_text())


def test_a_password_with_an_unencoded_at_sign_is_a_config_problem(tmp_path: Path) -> None:
    """``user:p@ss@host``: the URL's parser takes ``ss@host`` for the host, and prints it."""
    conf = write_config(tmp_path, "postgresql+psycopg://u:Khau@bi-mat@127.0.0.1/tin", "")
    checked = syndication("config", "check", config=conf)
    assert checked.returncode == 2
    assert f"{conf}: storage.url:" in checked.stderr
    assert "%40" in checked.stderr
    assert "bi-mat" not in checked.stderr + checked.stdout


def test_a_url_the_store_cannot_read_is_one_error_line_without_it(tmp_path: Path) -> None:
    """A port that is no number: the message says the URL is invalid without repeating it."""
    conf = write_config(tmp_path, "postgresql+psycopg://u:Khau-bi-mat@127.0.0.1:5x/tin", "")
    result = syndication("db", "upgrade", config=conf)
    assert result.returncode == 1, result.stdout
    assert result.stderr == "error: invalid database URL postgresql+psycopg://… (not a valid URL)\n"
