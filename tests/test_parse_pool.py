"""The parse pool as production runs it: worker processes forked from a forkserver, driven
by `syndication fetch` and `syndication run` as subprocesses, documents served over HTTP,
and ``ParsePool`` itself with real processes.

A defect that only shows across a process boundary (an exception that does not survive
pickling, a worker that dies or hangs or runs out of memory) is caught here, where the
boundary is real."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from syndication.core.parsing import ParsePool
from syndication.errors import ParseError
from syndication.ingest import pipeline
from syndication.ingest.normalize import MAX_DEPTH
from syndication.store import Store
from tests import parsework
from tests.httpserver import Reply, Request, TestServer
from tests.test_cli import syndication, write_config
from tests.test_core import ITEMS, rss
from tests.test_normalize import depth, nested
from tests.test_run import free_port, get, start, stop, wait_for


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


def feed_source(id: str, url: str, interval: str = "15m") -> str:
    return (
        f'[[sources]]\nid = "{id}"\nurl = "{url}"\ncategories = ["tin-tuc-su-kien"]\n'
        f'interval = "{interval}"\nallow_private_network = true\n'
    )


def items_of(name: str) -> list[tuple[str, str, str]]:
    return [
        (f"https://portal.example.vn/{name}/{i}.html", f"{title} ({name})", body)
        for i, (_, title, body) in enumerate(ITEMS)
    ]


def slow_feed(items: int = 3000) -> bytes:
    """A real feed that takes seconds to parse: many articles with real bodies."""
    body = "<p>" + "Đảng bộ Khối tổ chức hội nghị quán triệt nghị quyết. " * 20 + "</p>"
    return rss(
        [(f"https://portal.example.vn/cham/{i}.html", f"Tin số {i} của hội nghị", body) for i in range(items)]
    )


def memory_bomb(size: int = 12_000_000) -> bytes:
    """A small JSON Feed that needs much memory: millions of empty lists (64 bytes each)."""
    head = b'{"version": "https://jsonfeed.org/version/1.1", "title": "Bom", "items": [], "x": ['
    return head + b"[]," * (size // 3) + b"[]]}"


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, CPU ticks used) of a process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[11]) + int(fields[12])


def grandchildren(pid: int) -> dict[int, int]:
    """The grandchildren of ``pid`` (a parse pool's workers: children of its fork server),
    with the CPU ticks each has used."""
    stats = {int(p.name): _stat(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}
    children = {p for p, s in stats.items() if s is not None and s[0] == pid}
    return {p: s[1] for p, s in stats.items() if s is not None and s[0] in children}


def busy_worker(pid: int, *, seconds: float) -> int:
    """The worker under ``pid`` that is using the CPU (parsing), found by sampling /proc."""
    deadline = time.monotonic() + seconds
    before = grandchildren(pid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = grandchildren(pid)
        busy = [p for p, ticks in now.items() if ticks - before.get(p, ticks) >= 10]
        if busy:
            return busy[0]
        before = now
    pytest.fail(f"no busy parse worker under process {pid} within {seconds} s")


# --- the pool itself, with real processes ---------------------------------------------------


def with_pool(check: Callable[[ParsePool], Awaitable[None]], **limits: Any) -> None:
    """Run ``check`` on a fresh pool (one worker, 60 s, no memory cap unless ``limits``
    say otherwise), closed after it."""

    async def run() -> None:
        pool = ParsePool(**{"workers": 1, "timeout": 60, "memory_limit": None, **limits})
        try:
            await check(pool)
        finally:
            pool.close()

    asyncio.run(run())


async def echo(pool: ParsePool, n: int) -> None:
    url = f"https://x.vn/{n}"
    assert await pool.parse(parsework.echo, b"%d" % n, url=url) == (b"%d" % n, url)


def test_a_worker_killed_mid_parse_fails_only_its_document(tmp_path: Path) -> None:
    announced = tmp_path / "worker.pid"

    async def check(pool: ParsePool) -> None:
        slow = asyncio.ensure_future(
            pool.parse(parsework.announce_then_sleep, str(announced).encode(), url="https://x.vn/cham")
        )
        for _ in range(300):
            if announced.exists() and announced.read_text():
                break
            await asyncio.sleep(0.1)
        worker = int(announced.read_text())
        os.kill(worker, signal.SIGKILL)
        with pytest.raises(ParseError) as info:
            await slow
        assert str(info.value) == "the parse worker died (signal 9, SIGKILL)"
        assert info.value.url == "https://x.vn/cham"
        # Every document after it is parsed, on both workers (one of them new).
        await asyncio.gather(*(echo(pool, n) for n in range(8)))
        assert worker not in grandchildren(os.getpid())

    with_pool(check, workers=2)


def test_an_idle_worker_that_died_is_replaced_unnoticed() -> None:
    async def check(pool: ParsePool) -> None:
        await echo(pool, 1)
        (worker,) = grandchildren(os.getpid())
        os.kill(worker, signal.SIGKILL)  # the OOM killer's choice, say, while it waits
        await echo(pool, 2)
        assert worker not in grandchildren(os.getpid())

    with_pool(check)


def test_a_document_past_the_time_limit_fails_and_its_worker_is_replaced() -> None:
    async def check(pool: ParsePool) -> None:
        await echo(pool, 1)
        (worker,) = grandchildren(os.getpid())
        started = time.monotonic()
        with pytest.raises(ParseError) as info:
            await pool.parse(parsework.sleep, b"60", url="https://x.vn/cham")
        assert time.monotonic() - started < 30  # the deadline (1 s) and a generous margin
        assert (str(info.value), info.value.url) == ("parsing took more than 1 s", "https://x.vn/cham")
        assert worker not in grandchildren(os.getpid())  # killed, not left sleeping
        await echo(pool, 2)

    with_pool(check, timeout=1)


def test_a_document_past_the_memory_limit_fails_and_its_worker_is_replaced() -> None:
    kwargs = {
        "declared_charset": None,
        "tz": ZoneInfo("Asia/Ho_Chi_Minh"),
        "source_id": "s",
        "max_html": 10**6,
    }

    async def check(pool: ParsePool) -> None:
        with pytest.raises(ParseError) as info:
            await pool.parse(pipeline.parse_feed_keyed, memory_bomb(), url="https://x.vn/bom.json", **kwargs)
        assert str(info.value) == "the parser ran out of memory (limit 256 MiB)"
        _, keyed = await pool.parse(
            pipeline.parse_feed_keyed, rss(ITEMS), url="https://x.vn/tin.rss", **kwargs
        )
        assert [k.data.title for k in keyed] == [title for _, title, _ in ITEMS]

    with_pool(check, memory_limit=256 * 1024**2)


def test_a_bug_in_a_worker_keeps_its_traceback_and_any_error_arrives() -> None:
    async def check(pool: ParsePool) -> None:
        with pytest.raises(ValueError, match=r"^a bug while reading 3 bytes from https://x\.vn/$") as bug:
            await pool.parse(parsework.buggy, b"abc", url="https://x.vn/")
        assert 'parsework.py", line' in str(bug.value.__cause__)  # where it happened, in the worker
        # An exception that would not unpickle here arrives as a RuntimeError naming it.
        with pytest.raises(RuntimeError, match=r"^tests\.parsework\.Unpicklable: không gửi về được$"):
            await pool.parse(parsework.unpicklable, b"", url="https://x.vn/")
        await echo(pool, 3)

    with_pool(check)


# --- the service as a subprocess -----------------------------------------------------------


def test_an_unreadable_document_fails_only_its_own_source(tmp_path: Path, server: TestServer) -> None:
    # A plain-text answer is rejected by the parser in a worker process; the sources
    # polled after it by the same process must not notice.
    server.add("/text.rss", "Trang này đang bảo trì.\n".encode(), content_type="text/plain; charset=utf-8")
    good = [f"tot{n}" for n in range(6)]
    for name in good:
        server.add(f"/{name}.rss", rss(items_of(name)))
    sources = feed_source("chu", server.url("/text.rss"))
    sources += "".join(feed_source(name, server.url(f"/{name}.rss")) for name in good)
    conf = write_config(
        tmp_path, f"sqlite:///{tmp_path / 'syn.db'}", sources + "[fetch]\nparse_workers = 2\n"
    )
    result = syndication("fetch", config=conf)
    assert result.returncode == 0, result.stderr
    assert re.search(r"chu\W+error", result.stdout), result.stdout
    assert re.search(r"error: chu: .*not a feed", result.stderr), result.stderr
    for name in good:
        assert re.search(rf"{name}\W+new\W+2\W+0\W+0", result.stdout), result.stdout + result.stderr
    assert "BrokenProcessPool" not in result.stderr
    assert "internal error" not in result.stderr


def test_fetch_fails_a_document_past_parse_timeout(tmp_path: Path, server: TestServer) -> None:
    server.add("/cham.rss", slow_feed())
    server.add("/tin.rss", rss(items_of("tin")))
    sources = feed_source("cham", server.url("/cham.rss")) + feed_source("tin", server.url("/tin.rss"))
    extra = '[fetch]\nparse_workers = 2\nparse_timeout = "1s"\n'
    conf = write_config(tmp_path, f"sqlite:///{tmp_path / 'syn.db'}", sources + extra)
    started = time.monotonic()
    result = syndication("fetch", config=conf)
    assert time.monotonic() - started < 100  # the deadline holds (the test's own limit is 120 s)
    assert result.returncode == 0, result.stderr
    assert "error: cham: parsing took more than 1 s" in result.stderr.splitlines()
    assert re.search(r"tin\W+new\W+2\W+0\W+0", result.stdout), result.stdout + result.stderr


def test_fetch_fails_a_document_past_parse_memory(tmp_path: Path, server: TestServer) -> None:
    server.add("/bom.json", memory_bomb(), content_type="application/feed+json")
    server.add("/tin.rss", rss(items_of("tin")))
    sources = feed_source("bom", server.url("/bom.json")) + feed_source("tin", server.url("/tin.rss"))
    extra = '[fetch]\nparse_workers = 2\nparse_memory = "256MiB"\n'
    conf = write_config(tmp_path, f"sqlite:///{tmp_path / 'syn.db'}", sources + extra)
    result = syndication("fetch", config=conf)
    assert result.returncode == 0, result.stderr
    assert "error: bom: the parser ran out of memory (limit 256 MiB)" in result.stderr.splitlines()
    assert re.search(r"tin\W+new\W+2\W+0\W+0", result.stdout), result.stdout + result.stderr


def test_run_survives_a_parse_worker_killed_mid_parse(tmp_path: Path, server: TestServer) -> None:
    # `syndication run` polls a slow source and three quick ones. The quick ones answer
    # only once the worker parsing the slow one has been killed (SIGKILL, as the OOM
    # killer does), so their documents reach the pool after the death.
    killed = threading.Event()
    server.add("/cham.rss", slow_feed())
    quick = ["tin1", "tin2", "tin3"]
    for name in quick:
        body = rss(items_of(name))

        def after_the_kill(request: Request, body: bytes = body) -> Reply:
            killed.wait(90)
            return Reply(body=body, content_type="application/rss+xml; charset=utf-8")

        server.handler(f"/{name}.rss", after_the_kill)
    store_url = f"sqlite:///{tmp_path / 'syn.db'}"
    sources = feed_source("cham", server.url("/cham.rss"), interval="1m")
    sources += "".join(feed_source(name, server.url(f"/{name}.rss"), interval="1m") for name in quick)
    extra = '[fetch]\nparse_workers = 2\n[service]\ntick = "1s"\njitter = 0\nstop_timeout = "10s"\n'
    conf = write_config(tmp_path, store_url, sources + extra)
    port = free_port()
    log = tmp_path / "run.log"
    proc = start(conf, "run", "--port", str(port), log=log)
    try:
        worker = busy_worker(proc.pid, seconds=60)
        os.kill(worker, signal.SIGKILL)
        killed.set()

        def states() -> dict[str, tuple[int, str | None, int]]:
            with Store(store_url) as store:
                return {
                    s.id: (s.error_count, s.last_error, s.article_count)
                    for s in store.source_states().values()
                }

        def settled() -> bool:
            found = states()
            return len(found) == 4 and found["cham"][0] == 1 and all(found[n][2] == 2 for n in quick)

        wait_for("the first polls", settled, seconds=60, proc=proc)
        found = states()
        assert found["cham"][1] == "the parse worker died (signal 9, SIGKILL)"
        assert all(found[n][:2] == (0, None) for n in quick), found
        health = get(f"http://127.0.0.1:{port}/healthz")
        assert '"status": "ok"' in health or '"status":"ok"' in health, health
        # Its next poll (a minute later) parses the same document on a new worker.
        wait_for("the slow source's next poll", lambda: states()["cham"][0] == 0, seconds=120, proc=proc)
        assert states()["cham"][2] == 3000
    finally:
        code = stop(proc)
    output = log.read_text(encoding="utf-8")
    assert code == 0, output
    assert "Traceback" not in output, output
    assert "BrokenProcessPool" not in output, output


def test_workers_of_the_installed_command_load_only_the_parsers(tmp_path: Path, server: TestServer) -> None:
    # A worker first runs the command's script again (multiprocessing's fork server does
    # that for the main module): the script must not pull in the CLI, core and the store.
    import subprocess
    import sys

    server.add("/cham.rss", slow_feed())
    conf = write_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'syn.db'}",
        feed_source("cham", server.url("/cham.rss")) + "[fetch]\nparse_workers = 2\n",
    )
    command = [str(Path(sys.executable).parent / "syndication"), "--config", str(conf), "fetch"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        worker = busy_worker(proc.pid, seconds=60)
        maps = Path(f"/proc/{worker}/maps").read_text()
    finally:
        assert proc.wait(timeout=100) == 0
    assert "/lxml/" in maps  # the parsers are there
    for library in ("sqlalchemy", "css_inline", "yaml"):  # the store, the mail, the CLI's: not
        assert f"site-packages/{library}/" not in maps


# --- hostile markup, end to end ------------------------------------------------------------------


def page(title: str, body: str, head: str = "") -> bytes:
    return (
        f"<html><head><title>{title}</title>{head}</head><body>"
        f'<div class="detail"><h1>{title}</h1>{body}</div></body></html>'
    ).encode()


def test_nested_markup_bombs_finish_with_sane_output(tmp_path: Path, server: TestServer) -> None:
    # 60,000 nested <div>: in a feed's description, in a portal page's body and in its
    # meta description. Each took nh3 tens of seconds; parse_timeout (20 s) is the deadline.
    lead = "<p>Sáng 27/11, Đảng uỷ Khối tổ chức hội nghị quán triệt Nghị quyết Trung ương.</p>"
    bomb = nested(60_000)
    feed_item = [("https://portal.example.vn/bom/1.html", "Bài có bom", lead + bomb)]
    server.add("/bom.rss", rss(feed_item))
    links = '<a class="tin" href="/bai/1001.html">Một</a><a class="tin" href="/bai/1002.html">Hai</a>'
    listing = f"<html><body>{links}</body></html>"
    server.add("/trang.html", listing.encode(), content_type="text/html; charset=utf-8")
    server.add(
        "/bai/1001.html", page("Bom trong thân bài", lead + bomb), content_type="text/html; charset=utf-8"
    )
    meta = f'<meta name="description" content="{html.escape(bomb)}">'
    server.add("/bai/1002.html", page("Bom trong mô tả", lead, meta), content_type="text/html; charset=utf-8")
    sources = feed_source("bom", server.url("/bom.rss"))
    sources += (
        f'[[sources]]\nid = "trang"\nkind = "html"\nurl = "{server.url("/trang.html")}"\n'
        'categories = ["tin-tuc-su-kien"]\nallow_private_network = true\n'
        '[sources.html]\nlinks = "a.tin"\nbody = ".detail"\n'
    )
    extra = '[fetch]\nparse_workers = 2\nparse_timeout = "20s"\n'
    conf = write_config(tmp_path, f"sqlite:///{tmp_path / 'syn.db'}", sources + extra)
    result = syndication("fetch", config=conf)
    assert result.returncode == 0, result.stderr
    assert re.search(r"bom\W+new\W+1\W", result.stdout), result.stdout + result.stderr
    assert re.search(r"trang\W+new\W+2\W", result.stdout), result.stdout + result.stderr
    assert "parsing took more than" not in result.stderr
    listed = syndication("articles", "--format", "json", "--limit", "10", config=conf)
    articles = {a["title"]: a for a in json.loads(listed.stdout)}
    assert set(articles) == {"Bài có bom", "Bom trong thân bài", "Bom trong mô tả"}
    for article in articles.values():
        assert "Đảng uỷ Khối tổ chức hội nghị" in article["content_html"]
        assert depth(article["content_html"]) <= MAX_DEPTH
        assert len(article["content_html"]) < 20_000
        assert "<" not in article["summary"]


def test_an_article_body_is_cut_to_max_content_html(tmp_path: Path, server: TestServer) -> None:
    body = "".join(
        f"<p>Đoạn {n}: Đảng &amp; Nhà nước <a href='/tin/{n}.html'>liên kết</a></p>" for n in range(40_000)
    )
    server.add("/dai.rss", rss([("https://portal.example.vn/dai/1.html", "Bài rất dài", body)]))
    extra = '[fetch]\nparse_workers = 2\nmax_content_html = "1MB"\n'
    conf = write_config(
        tmp_path, f"sqlite:///{tmp_path / 'syn.db'}", feed_source("dai", server.url("/dai.rss")) + extra
    )
    result = syndication("fetch", config=conf)
    assert result.returncode == 0, result.stderr
    cut = "the article's HTML was cut to 1 MB (fetch.max_content_html)"
    warning = f"warning: dai: https://portal.example.vn/dai/1.html: {cut}"
    assert warning in result.stderr.splitlines(), result.stderr
    (article,) = json.loads(syndication("articles", "--format", "json", config=conf).stdout)
    stored = article["content_html"]
    assert 900_000 < len(stored.encode("utf-8")) <= 1_000_000
    assert stored.startswith("<p>Đoạn 0: Đảng &amp; Nhà nước")
    assert stored.endswith("</p>")
