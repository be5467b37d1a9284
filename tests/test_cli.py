"""The ``syndication`` command as a user runs it: a subprocess, real files, a real HTTP server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.httpserver import TestServer
from tests.test_core import ITEMS, rss

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"


def syndication(*args: str, config: Path | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SYNDICATION_CONFIG"}
    env["COLUMNS"] = "200"
    cmd = [sys.executable, "-m", "syndication"]
    if config is not None:
        cmd += ["--config", str(config)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


def write_config(tmp_path: Path, store_url: str, sources: str) -> Path:
    path = tmp_path / "syndication.toml"
    path.write_text(
        f"""
[site]
title = "Cổng thông tin thử nghiệm"
base_url = "https://syn.example.vn/"
[storage]
url = "{store_url}"
[[categories]]
slug = "tin-tuc-su-kien"
title = "Tin tức - Sự kiện"
[[categories]]
slug = "xay-dung-dang"
title = "Xây dựng Đảng"
{sources}
""",
        encoding="utf-8",
    )
    return path


def test_fetch_sources_articles_end_to_end(tmp_path: Path, store_url: str, server: TestServer) -> None:
    server.add("/tin.rss", rss(ITEMS), etag='"1"')
    server.add("/hong.rss", b"no", status=404, content_type="text/plain")
    for page in (DATA / "portal").iterdir():
        server.add(f"/{page.name}", page.read_bytes(), content_type="text/html")
    conf = write_config(
        tmp_path,
        store_url,
        f"""
[[sources]]
id = "tin"
url = "{server.url("/tin.rss")}"
categories = ["tin-tuc-su-kien"]
allow_private_network = true
[[sources]]
id = "hong"
url = "{server.url("/hong.rss")}"
categories = ["tin-tuc-su-kien"]
allow_private_network = true
[[sources]]
id = "portal"
kind = "html"
url = "{server.url("/xay-dung-dang.html")}"
categories = ["xay-dung-dang"]
allow_private_network = true
""",
    )
    first = syndication("fetch", config=conf)
    assert first.returncode == 0, first.stderr
    assert re.search(r"tin\W+new\W+2\W+0\W+0", first.stdout), first.stdout
    assert re.search(r"hong\W+error\W+0\W+0\W+0", first.stdout), first.stdout
    assert "error: hong: HTTP 404 Not Found" in first.stderr.splitlines()
    assert re.search(r"portal\W+new\W+[1-9]", first.stdout), first.stdout
    assert "Traceback" not in first.stderr

    second = syndication("fetch", "--source", "tin", config=conf)
    assert second.returncode == 0
    assert re.search(r"tin\W+not modified", second.stdout), second.stdout
    assert "hong" not in second.stdout

    listed = syndication("sources", "--format", "json", config=conf)
    states = {s["id"]: s for s in json.loads(listed.stdout)}
    assert states["hong"]["error_count"] == 1
    assert "404" in states["hong"]["last_error"]
    assert states["tin"]["articles"] == 2
    assert states["tin"]["last_error"] is None

    found = syndication("articles", "--search", "ha noi", "--source", "tin", "--format", "json", config=conf)
    assert found.returncode == 0, found.stderr
    articles = json.loads(found.stdout)
    assert [a["title"] for a in articles] == [ITEMS[0][1]]
    fields = "id guid url title summary content_html author categories published updated"
    fields += " source sources duplicate_of"
    assert set(articles[0]) == set(fields.split())
    assert articles[0]["categories"] == ["tin-tuc-su-kien"]
    assert articles[0]["published"].endswith("Z")

    # Tone placement and diacritics do not matter: "uy ban" finds "Ủy ban".
    uy = json.loads(syndication("articles", "--search", "uỷ ban", "--format", "json", config=conf).stdout)
    assert ITEMS[1][1] in [a["title"] for a in uy]

    table = syndication("articles", "--category", "xay-dung-dang", config=conf)
    assert table.returncode == 0
    assert "Các tin khác" not in table.stdout
    assert "tin-tuc-su-kien" not in table.stdout


def test_fetch_exits_1_when_every_source_fails(tmp_path: Path, store_url: str, server: TestServer) -> None:
    conf = write_config(
        tmp_path,
        store_url,
        f'[[sources]]\nid = "hong"\nurl = "{server.url("/none.rss")}"\nallow_private_network = true\n',
    )
    result = syndication("fetch", config=conf)
    assert result.returncode == 1
    assert "error: hong: HTTP 404 Not Found" in result.stderr


def test_bad_config_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text(
        '[site]\ntitle = "x"\n[[sources]]\nid = "a"\nurl = "gopher://x"\ninterval = "sớm"\n', encoding="utf-8"
    )
    result = syndication("fetch", config=conf)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert f"{conf}: site.base_url: is required" in lines
    assert any(line.startswith(f"{conf}: sources[0].url: ") for line in lines)
    assert any(line.startswith(f"{conf}: sources[0].interval: ") for line in lines)
    assert "Traceback" not in result.stderr


def test_unknown_category_and_source_are_one_line_errors(tmp_path: Path, store_url: str) -> None:
    conf = write_config(tmp_path, store_url, "")
    result = syndication("articles", "--category", "khong-co", config=conf)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'error: unknown category "khong-co" (configured: tin-tuc-su-kien, xay-dung-dang)'
    )
    assert syndication("fetch", "--source", "x", config=conf).returncode == 1


def test_unopenable_store_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    conf = write_config(tmp_path, f"sqlite:///{tmp_path}/dir.db", "")
    result = syndication("db", "upgrade", config=conf)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


def test_db_upgrade_and_config_check(tmp_path: Path, store_url: str) -> None:
    conf = write_config(tmp_path, store_url, "")
    up = syndication("db", "upgrade", config=conf)
    assert up.returncode == 0, up.stderr
    assert "at revision" in up.stdout
    check = syndication("config", "check", config=conf)
    assert check.returncode == 0
    assert "2 categories, 0 sources" in check.stdout


COMMANDS = [
    ["fetch"],
    ["sources"],
    ["articles"],
    ["serve"],
    ["status"],
    ["feeds", "build"],
    ["subscribers", "import"],
    ["subscribers", "list"],
    ["subscribers", "add"],
    ["subscribers", "remove"],
    ["subscribers", "export"],
    ["digest", "send"],
    ["digest", "preview"],
    ["digest", "report"],
    ["db", "upgrade"],
    ["config", "check"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_and_is_in_the_readme(command: list[str]) -> None:
    result = syndication(*command, "--help")
    assert result.returncode == 0
    assert "Usage:" in result.stdout
    summary = result.stdout.split("\n\n")[1].strip()
    assert len(summary) > 20, result.stdout
    assert f"syndication {' '.join(command)}" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_bundled_default_config_runs_offline(tmp_path: Path) -> None:
    """The README's first command polls the bundled config; check it works from a copy."""
    import shutil

    shutil.copytree(ROOT / "config", tmp_path / "config")
    conf = tmp_path / "config" / "syndication.toml"
    result = syndication("fetch", config=conf, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(re.findall(r"\bnew\W+[1-9]", result.stdout)) == 3, result.stdout
    assert "error:" not in result.stderr, result.stderr
    assert (tmp_path / "var" / "syndication.db").is_file()
    again = syndication("fetch", config=conf, cwd=tmp_path)
    assert again.stdout.count("not modified") == 3, again.stdout


def test_articles_of_a_source_include_what_merged_into_another_sources_article(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    """``articles --source ID`` lists everything that source carries: an article first seen
    from another source (same identity) and its own copy of a story another source brought
    first (a near-duplicate), which the unfiltered listing shows once."""
    body = "".join(
        f"<p>Đoàn giám sát số {n} của Ủy ban Kiểm tra Đảng ủy Khối làm việc với chi bộ cơ sở thứ {n}, "
        f"xem xét việc thực hiện nghị quyết và chương trình công tác quý {n % 4 + 1} năm 2026.</p>"
        for n in range(1, 13)
    )
    story = ("https://portal.example.vn/tin/7.html", "Ủy ban Kiểm tra giám sát chuyên đề", body)
    copy = (
        "https://baokhac.example.org/bai/99",
        "Uỷ ban Kiểm tra giám sát chuyên đề",
        body.replace("Ủy", "Uỷ"),
    )
    server.add("/goc.rss", rss([story]))
    server.add("/lai.rss", rss([story]))  # the same article (same guid) from a second source
    server.add("/sao.rss", rss([copy]))  # the story copied under another address
    sources = "".join(
        f'[[sources]]\nid = "{id}"\nurl = "{server.url(f"/{id}.rss")}"\n'
        'categories = ["tin-tuc-su-kien"]\nallow_private_network = true\n'
        for id in ("goc", "lai", "sao")
    )
    conf = write_config(tmp_path, store_url, sources)
    for id in ("goc", "lai", "sao"):  # in this order: goc is first seen
        assert syndication("fetch", "--source", id, config=conf).returncode == 0

    def listed(*args: str) -> list[dict[str, object]]:
        result = syndication("articles", *args, "--format", "json", config=conf)
        assert result.returncode == 0, result.stderr
        found: list[dict[str, object]] = json.loads(result.stdout)
        return found

    carried = listed("--source", "sao")
    assert [a["url"] for a in carried] == [copy[0]]
    (shown,) = listed()  # the story once
    assert (shown["url"], shown["source"], shown["sources"]) == (story[0], "goc", ["goc", "lai"])
    assert shown["duplicate_of"] is None
    assert [a["id"] for a in listed("--source", "goc")] == [shown["id"]]
    assert [a["id"] for a in listed("--source", "lai")] == [shown["id"]]
    (own,) = carried
    assert (own["source"], own["sources"]) == ("sao", ["sao"])
    assert own["duplicate_of"] == shown["id"]

    table = syndication("articles", "--source", "sao", config=conf)
    assert f"(duplicate of {shown['id']})" in table.stdout, table.stdout
