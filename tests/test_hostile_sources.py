"""Hostile sources against the real service: ``syndication fetch`` and ``feeds build`` as
subprocesses (parse workers in their own processes), sources on a loopback HTTP server or
in a ``file:`` folder, then what was stored and published is read back with real parsers.

* Entity declarations wherever they stand expand nothing (stored and published sizes stay
  small, and so does the memory of the service's processes).
* A malformed international host name is a configuration error in a source URL, a named
  fetch error in a redirect, and a warning for one link of a listing; never a crash.
* A ``file:`` portal listing (a mirrored portal whose pages someone else can influence)
  reads nothing outside its folder, whatever the encoding, symlink or system file.
* Authors are plain text, published escaped like titles; no bidi control survives in a
  title, an author or a link text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from tests.httpserver import TestServer
from tests.test_cli import DATA, ROOT, syndication
from tests.test_cli import write_config as cli_config
from tests.test_xml_entities import DECL, SHAPES, VALUE, rss, subset

MIB = 1024 * 1024


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


def write_config(tmp_path: Path, store_url: str, sources: str) -> Path:
    """``tests.test_cli.write_config``, parsing in worker processes as deployed."""
    return cli_config(tmp_path, store_url, f"[fetch]\nparse_workers = 2\n{sources}")


def feed_source(source_id: str, url: str) -> str:
    return (
        f'[[sources]]\nid = "{source_id}"\nurl = "{url}"\ncategories = ["tin-tuc-su-kien"]\n'
        "allow_private_network = true\n"
    )


# -- the memory of a process tree ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_bytes: int
    """The largest VmHWM (peak resident memory) of the command and of every process it started."""


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _descendants(pid: int) -> list[int]:
    pending, found = [pid], []
    while pending:
        children = _children(pending.pop())
        found += children
        pending += children
    return found


def _vmhwm_bytes(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(str(usage.ru_maxrss * 1024))
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Runs a command and writes its peak memory (``ru_maxrss``: its own, and that of every
descendant it waited for) to a file. The command must be forked from a small process:
started straight from pytest (vfork and exec), its ``ru_maxrss`` would begin at the size
pytest has grown to by then, hundreds of MiB late in the suite."""


def run_measured(*args: str, config: Path, log: Path) -> Measured:
    """Run ``syndication`` like ``tests.test_cli.syndication`` and measure its peak memory:
    the command's own and that of the descendants it waited for, from ``wait4`` in a small
    launcher, and its live descendants' (the parse workers, under the fork server) by
    reading their VmHWM until the command ends."""
    env = {k: v for k, v in os.environ.items() if k != "SYNDICATION_CONFIG"}
    env["COLUMNS"] = "200"
    report = log.with_suffix(".maxrss")
    cmd = [sys.executable, "-c", _LAUNCHER, str(report), sys.executable, "-m", "syndication"]
    cmd += ["--config", str(config), *args]
    out, err = log.with_suffix(".out"), log.with_suffix(".err")
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=stdout, stderr=stderr)
    done = threading.Event()
    peaks: list[int] = [0]

    def sample() -> None:
        while not done.is_set():
            # The launcher's child (the command) and everything under it.
            for pid in _descendants(proc.pid):
                peaks[0] = max(peaks[0], _vmhwm_bytes(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    proc.wait()
    done.set()
    sampler.join()
    return Measured(
        returncode=proc.returncode,
        stdout=out.read_text(encoding="utf-8"),
        stderr=err.read_text(encoding="utf-8"),
        peak_bytes=max(peaks[0], int(report.read_text())),
    )


def stored_articles(conf: Path) -> dict[str, list[dict[str, object]]]:
    """Every stored article, by source id."""
    listed = syndication("articles", "--format", "json", "--limit", "1000", config=conf)
    assert listed.returncode == 0, listed.stderr
    by_source: dict[str, list[dict[str, object]]] = {}
    for article in json.loads(listed.stdout):
        by_source.setdefault(article["source"], []).append(article)
    return by_source


def build_feeds(conf: Path, out: Path) -> Path:
    built = syndication("feeds", "build", "--out", str(out), config=conf)
    assert built.returncode == 0, built.stderr
    return out / "feeds"


# -- entity declarations ----------------------------------------------------------------------

BIG_VALUE = "A" * 10_000
BIG_REFS = "&zq;" * 6_000
"""Like the issue's 22 KB feed, twice the references: expanded, a 60,000,000-character article."""
PEAK_LIMIT = 250 * MIB
"""Generous: polling these sources without expanding anything peaks near 100 MiB in every
process; expanding the big document takes several times that."""


def test_entity_declarations_anywhere_expand_nothing_in_storage_feeds_or_memory(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    sources = ""
    ids: dict[str, str] = {}
    for n, (shape, document) in enumerate(SHAPES.items(), start=1):
        ids[f"s{n}"] = shape
        server.add(f"/s{n}.rss", document(n), content_type="application/rss+xml")
        sources += feed_source(f"s{n}", server.url(f"/s{n}.rss"))
    big = "x\n" + subset(f'<!ENTITY zq "{BIG_VALUE}">') + rss(f"Nội dung thật {BIG_REFS}", n=100)
    assert len(big) < 40_000
    server.add("/big.rss", big.encode(), content_type="application/rss+xml")
    sources += feed_source("big", server.url("/big.rss"))
    conf = write_config(tmp_path, store_url, sources)

    fetched = run_measured("fetch", config=conf, log=tmp_path / "fetch")

    assert fetched.returncode == 0, fetched.stderr
    assert "Traceback" not in fetched.stderr
    assert fetched.peak_bytes < PEAK_LIMIT, f"peak {fetched.peak_bytes / MIB:.0f} MiB"
    stored = stored_articles(conf)
    for source_id, shape in {**ids, "big": "the issue's feed"}.items():
        (article,) = stored[source_id]
        content = str(article["content_html"])
        assert "Nội dung thật" in content, shape
        assert len(content) < 50_000, (shape, len(content))
        assert VALUE not in content, shape
        assert BIG_VALUE[:1000] not in content, shape
    feeds = build_feeds(conf, tmp_path / "site")
    published = (feeds / "all.rss").read_bytes()
    assert len(published) < 2 * MIB, len(published)
    channel = etree.fromstring(published).find("channel")
    assert channel is not None
    items = channel.findall("item")
    assert len(items) == len(SHAPES) + 1
    text = "".join(str(piece) for piece in channel.itertext())
    assert VALUE not in text
    assert BIG_VALUE[:1000] not in text
    assert DECL not in text


# -- malformed international host names --------------------------------------------------------


def html_source(source_id: str, url: str, links: str = "ul.tin a") -> str:
    return (
        f'[[sources]]\nid = "{source_id}"\nkind = "html"\nurl = "{url}"\ncategories = ["tin-tuc-su-kien"]\n'
        f'allow_private_network = true\n[sources.html]\nlinks = "{links}"\n'
    )


def test_malformed_host_names_are_a_config_error_or_named_fetch_errors(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    bad = write_config(tmp_path, store_url, feed_source("hong", "http://xn--/tin.rss"))
    checked = syndication("config", "check", config=bad)
    assert checked.returncode == 2, checked.stdout
    problem = 'invalid host name "xn--": Malformed A-label, no Punycode eligible content found'
    assert checked.stderr.splitlines() == [f"{bad}: sources[0].url: {problem}"]

    server.redirect("/chuyen.rss", "http://xn--/tin.rss")
    page = (DATA / "portal" / "hoi-nghi-quan-triet.html").read_bytes()
    server.add("/bai-10002.html", page, content_type="text/html; charset=utf-8")
    server.add(
        "/tin.html",
        "<html><body><ul class='tin'><li><a href='http://xn--/bai-10001.html'>Bài hỏng</a></li>"
        "<li><a href='/bai-10002.html'>Bài tốt</a></li></ul></body></html>".encode(),
        content_type="text/html; charset=utf-8",
    )
    conf = write_config(
        tmp_path,
        store_url,
        feed_source("chuyen", server.url("/chuyen.rss")) + html_source("portal", server.url("/tin.html")),
    )

    fetched = syndication("fetch", config=conf)

    assert fetched.returncode == 0, fetched.stderr
    assert "Traceback" not in fetched.stderr
    assert "internal error" not in fetched.stderr
    lines = fetched.stderr.splitlines()
    assert f"error: chuyen: refused redirect to http://xn--/tin.rss: {problem}" in lines
    assert any(
        line.startswith('warning: portal: http://xn--/bai-10001.html: invalid host name "xn--"')
        for line in lines
    ), lines
    stored = stored_articles(conf)
    assert [a["url"] for a in stored["portal"]] == [server.url("/bai-10002.html")]
    assert "chuyen" not in stored


# -- file: listings ---------------------------------------------------------------------------

SECRET = "MẬT-KHẨU-NGOÀI-THƯ-MỤC-7c1f"
ENV_SECRET = "BIEN-MOI-TRUONG-BI-MAT-93ad"


def test_a_file_listing_reads_nothing_outside_its_folder(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read by the service from its own environment, were /proc/self/environ ever read.
    monkeypatch.setenv("SYNDICATION_TEST_SECRET", ENV_SECRET)
    folder = tmp_path / "mirror" / "tin"
    folder.mkdir(parents=True)
    page = (DATA / "portal" / "hoi-nghi-quan-triet.html").read_text(encoding="utf-8")
    (folder / "hoi-nghi-10001.html").write_text(page, encoding="utf-8")
    outside = tmp_path / "bi-mat-10009.html"
    outside.write_text(page.replace("Hội nghị", f"{SECRET} Hội nghị"), encoding="utf-8")
    (folder / "lien-ket-10010.html").symlink_to(outside)
    up = "%2e%2e/" * 30
    hrefs = [
        "hoi-nghi-10001.html",
        "%2e%2e/%2e%2e/bi-mat-10009.html",
        "%252e%252e/%252e%252e/bi-mat-10009.html",
        "lien-ket-10010.html",
        f"{up}proc/self/environ",
        "file:///proc/self/environ",
        f"{up}etc/passwd",
    ]
    listing = folder / "danh-sach.html"
    listing.write_text(
        "<html><body><ul class='tin'>"
        + "".join(f"<li><a href='{h}'>Bài số {i}</a></li>" for i, h in enumerate(hrefs))
        + "</ul></body></html>",
        encoding="utf-8",
    )
    conf = write_config(tmp_path, store_url, html_source("mirror", listing.as_uri()))

    fetched = syndication("fetch", config=conf)
    site = build_feeds(conf, tmp_path / "site")

    assert fetched.returncode == 0, fetched.stderr
    assert "Traceback" not in fetched.stderr
    assert "warning: mirror: " in fetched.stderr  # the symlink, refused when read
    stored = syndication("articles", "--format", "json", "--limit", "100", config=conf)
    published = stored.stdout + "".join(p.read_text(encoding="utf-8") for p in site.iterdir())
    for leaked in (SECRET, ENV_SECRET, "SYNDICATION_TEST_SECRET", "root:x:0:0", "/bin/sh"):
        assert leaked not in published, leaked
    # The one article inside the folder (an offline copy: stored under its canonical link).
    (article,) = json.loads(stored.stdout)
    assert str(article["url"]).endswith(
        "/dang-bo-khoi-to-chuc-hoi-nghi-hoc-tap-quan-triet-nghi-quyet-trung-uong-10452.html"
    )


# -- authors and bidi controls ----------------------------------------------------------------

RLO, PDF, RLI, PDI = "\u202e", "\u202c", "\u2067", "\u2069"
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
ATOM = "http://www.w3.org/2005/Atom"
DC = "http://purl.org/dc/elements/1.1/"


def test_authors_are_plain_text_and_bidi_controls_are_gone_from_every_published_feed(
    tmp_path: Path, store_url: str, server: TestServer
) -> None:
    feed = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Kênh</title>'
        "<link>https://p.example.vn/</link><item>"
        f"<title>Bản tin {RLO}lmth.exe{PDF} mới</title><link>https://p.example.vn/bai-1.html</link>"
        "<dc:creator>&lt;script&gt;alert(1)&lt;/script&gt; Nguyễn Văn A</dc:creator>"
        "<description>&lt;p&gt;Xem &lt;a href='https://p.example.vn/x'&gt;"
        f"{RLI}tệp đính kèm{PDI}&lt;/a&gt;&lt;/p&gt;</description></item></channel></rss>"
    )
    server.add("/tin.rss", feed.encode())
    conf = write_config(tmp_path, store_url, feed_source("tin", server.url("/tin.rss")))

    fetched = syndication("fetch", config=conf)
    feeds = build_feeds(conf, tmp_path / "site")

    assert fetched.returncode == 0, fetched.stderr
    rss_item = etree.parse(str(feeds / "all.rss")).find("channel/item")
    assert rss_item is not None
    assert rss_item.findtext(f"{{{DC}}}creator") == "Nguyễn Văn A"
    assert rss_item.findtext("title") == "Bản tin lmth.exe mới"
    entry = etree.parse(str(feeds / "all.atom")).find(f"{{{ATOM}}}entry")
    assert entry is not None
    assert entry.findtext(f"{{{ATOM}}}author/{{{ATOM}}}name") == "Nguyễn Văn A"
    assert entry.findtext(f"{{{ATOM}}}title") == "Bản tin lmth.exe mới"
    (item,) = json.loads((feeds / "all.json").read_text(encoding="utf-8"))["items"]
    assert item["authors"] == [{"name": "Nguyễn Văn A"}]
    assert item["title"] == "Bản tin lmth.exe mới"
    assert ">tệp đính kèm</a>" in item["content_html"]
    for path in feeds.iterdir():
        published = path.read_text(encoding="utf-8")
        assert "alert(1)" not in published, path.name
        assert not any(char in published for char in BIDI), path.name
