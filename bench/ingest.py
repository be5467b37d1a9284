"""Ingest benchmark: syndication against the `reader` library, in one run.

Serves 200 feeds of 50 full-content Vietnamese articles each from a local HTTP
server on 127.0.0.1 (nginx with one worker when installed, else Python's
http.server in its own process), then, for each implementation in a fresh
process and an empty SQLite store:

  poll 1: every feed is new      -> entries/s
  poll 2: every feed answers 304 -> feeds/s

and prints peak memory (the whole process tree: syndication's parse workers
included) and syndication's ratio to the peer. Run:  make bench-ingest
(or .venv/bin/python bench/ingest.py after `pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

WORDS = [
    "Đảng",
    "bộ",
    "Khối",
    "các",
    "cơ",
    "quan",
    "tỉnh",
    "tổ",
    "chức",
    "hội",
    "nghị",
    "học",
    "tập",
    "quán",
    "triệt",
    "nghị",
    "quyết",
    "Trung",
    "ương",
    "cán",
    "bộ",
    "đảng",
    "viên",
    "chi",
    "bộ",
    "cơ",
    "sở",
    "tuyên",
    "truyền",
    "thực",
    "hiện",
    "nhiệm",
    "vụ",
    "chính",
    "trị",
    "năm",
    "2026",
    "phát",
    "triển",
    "kinh",
    "tế",
    "xã",
    "hội",
    "bảo",
    "đảm",
    "quốc",
    "phòng",
    "an",
    "ninh",
    "xây",
    "dựng",
    "chỉnh",
    "đốn",
    "Đảng",
    "hệ",
    "thống",
    "chính",
    "trị",
    "trong",
    "sạch",
    "vững",
    "mạnh",
    "Ủy",
    "ban",
    "nhân",
    "dân",
    "hoà",
    "bình",
    "đoàn",
    "kết",
    "thống",
    "nhất",
    "nâng",
    "cao",
    "chất",
    "lượng",
    "sinh",
    "hoạt",
    "công",
    "tác",
    "kiểm",
    "tra",
    "giám",
    "sát",
    "phong",
    "trào",
    "thi",
    "đua",
    "yêu",
    "nước",
    "người",
    "dân",
    "doanh",
    "nghiệp",
    "chuyển",
    "đổi",
    "số",
]


def paragraph(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def make_feed(index: int, items: int, rng: random.Random) -> bytes:
    base = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/">',
        "<channel>",
        f"<title>Chuyên mục {index}: Tin tức - Sự kiện</title>",
        f"<link>https://portal{index}.example.vn/</link>",
        "<description>Cổng thông tin Đảng bộ Khối</description><language>vi</language>",
    ]
    for i in range(items):
        url = f"https://portal{index}.example.vn/tin-tuc/bai-{index}-{i}.html"
        body = (
            "".join(
                f"<p>{escape(paragraph(rng, 70))} <strong>{escape(rng.choice(WORDS))}</strong> "
                f'<a href="/lien-quan/{i}-{k}.html">xem thêm</a></p>'
                for k in range(8)
            )
            + f'<p><img src="/images/{index}/{i}.jpg" alt="Ảnh minh hoạ"></p>'
        )
        out.append(
            "<item>"
            f"<title>{escape(paragraph(rng, 12))} số {index}-{i}</title>"
            f"<link>{url}</link><guid>{url}</guid>"
            f"<description>{escape(paragraph(rng, 40))}</description>"
            f"<content:encoded><![CDATA[{body}]]></content:encoded>"
            f"<dc:creator>Lê Chung</dc:creator>"
            f"<pubDate>{format_datetime(base - timedelta(minutes=index * items + i))}</pubDate>"
            "</item>"
        )
    out.append("</channel></rss>")
    return "\n".join(out).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(root: Path, work: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    port = free_port()
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx:
        conf = work / "nginx.conf"
        conf.write_text(
            f"""
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type application/rss+xml;
    sendfile on;
    etag on;
    keepalive_requests 100000;
    client_body_temp_path {work}/tmp-body;
    proxy_temp_path {work}/tmp-proxy;
    fastcgi_temp_path {work}/tmp-fastcgi;
    uwsgi_temp_path {work}/tmp-uwsgi;
    scgi_temp_path {work}/tmp-scgi;
    server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
"""
        )
        proc = subprocess.Popen([nginx, "-c", str(conf)])
        name = "nginx (1 worker)"
    else:
        proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        name = "python http.server (nginx not installed)"
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc, port, name
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("benchmark server did not start")


def tree_peak_kib(pid: int) -> int:
    """Sum of peak resident memory (VmHWM) over a process and its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total


def child_ours(urls: list[str], work: Path) -> dict[str, object]:
    from syndication import config
    from syndication.core import Syndication

    conf = work / "ours.toml"
    lines = [
        '[site]\ntitle = "bench"\nbase_url = "https://bench.example.vn/"\n',
        f'[storage]\nurl = "sqlite:///{work}/ours.db"\n',
        '[[categories]]\nslug = "tin"\ntitle = "Tin"\n',
    ]
    lines += [
        f'[[sources]]\nid = "f{i}"\nurl = "{u}"\ncategories = ["tin"]\nallow_private_network = true\n'
        for i, u in enumerate(urls)
    ]
    conf.write_text("\n".join(lines))
    settings = config.load(conf)

    async def main() -> dict[str, object]:
        async with Syndication(settings) as syn:
            await syn.start()
            t0 = time.perf_counter()
            first = await syn.poll()
            t1 = time.perf_counter()
            second = await syn.poll()
            t2 = time.perf_counter()
            peak = tree_peak_kib(os.getpid())
        errors = [r.error for r in first + second if r.error]
        return {
            "entries": sum(r.counts.new for r in first),
            "first_s": t1 - t0,
            "second_s": t2 - t1,
            "second_not_modified": sum(r.status == "not_modified" for r in second),
            "errors": errors[:3],
            "peak_kib": peak,
        }

    return asyncio.run(main())


def child_reader(urls: list[str], work: Path) -> dict[str, object]:
    from reader import make_reader

    r = make_reader(str(work / "reader.sqlite"))
    for u in urls:
        r.add_feed(u)
    t0 = time.perf_counter()
    r.update_feeds(scheduled=False)
    t1 = time.perf_counter()
    entries = r.get_entry_counts().total
    r.update_feeds(scheduled=False)
    t2 = time.perf_counter()
    errors = [str(f.last_exception) for f in r.get_feeds() if f.last_exception][:3]
    peak = tree_peak_kib(os.getpid())
    r.close()
    return {"entries": entries, "first_s": t1 - t0, "second_s": t2 - t1, "errors": errors, "peak_kib": peak}


def run_child(impl: str, port: int, feeds: int, work: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            impl,
            "--port",
            str(port),
            "--feeds",
            str(feeds),
            "--work",
            str(work),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--child", choices=["ours", "reader"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        urls = [f"http://127.0.0.1:{args.port}/feed-{i}.xml" for i in range(args.feeds)]
        fn = child_ours if args.child == "ours" else child_reader
        print(json.dumps(fn(urls, args.work)))
        return

    with tempfile.TemporaryDirectory(prefix="syndication-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx's worker runs as another user and must read the files
        root = work / "www"
        root.mkdir()
        rng = random.Random(2026)
        size = 0
        for i in range(args.feeds):
            data = make_feed(i, args.items, rng)
            size += len(data)
            (root / f"feed-{i}.xml").write_bytes(data)
        server, port, server_name = start_server(root, work)
        try:
            print(f"server: {server_name} on 127.0.0.1:{port}")
            print(
                f"corpus: {args.feeds} feeds x {args.items} items, {size / 1e6:.1f} MB, cpus={os.cpu_count()}"
            )
            results = {}
            for impl in ("reader", "ours"):
                (work / impl).mkdir()
                results[impl] = run_child(impl, port, args.feeds, work / impl)
        finally:
            server.terminate()
            server.wait()

    peer, ours = results["reader"], results["ours"]
    if not (peer["entries"] and ours["entries"]):
        raise SystemExit(f"nothing was ingested: reader {peer}, syndication {ours}")
    expected = args.feeds * args.items
    rows = []
    for name, r in (("reader 3.26 (peer)", peer), ("syndication", ours)):
        rows.append(
            (
                name,
                r["entries"],
                r["entries"] / r["first_s"],
                args.feeds / r["second_s"],
                r["peak_kib"] / 1024,
                r.get("errors"),
            )
        )
    print(f"{'':22} {'entries':>8} {'poll 1 entries/s':>17} {'poll 2 feeds/s':>15} {'peak MiB':>9}")
    for name, entries, eps, fps, mib, _ in rows:
        print(f"{name:22} {entries:>8} {eps:>17.0f} {fps:>15.0f} {mib:>9.0f}")
    for name, *_, errors in rows:
        if errors:
            print(f"errors in {name}: {errors}")
    r1 = (ours["entries"] / ours["first_s"]) / (peer["entries"] / peer["first_s"])
    r2 = peer["second_s"] / ours["second_s"]
    print(f"ratio poll 1 (entries/s, ours/peer): {r1:.2f}x  (target >= 2.0x)")
    print(f"ratio poll 2 (feeds/s, ours/peer):   {r2:.2f}x  (target >= 1.5x)")
    print(f"ratio peak memory (ours/peer):       {ours['peak_kib'] / peer['peak_kib']:.2f}x")
    if ours["entries"] != expected or ours.get("second_not_modified") != args.feeds:
        print(
            f"WARNING: expected {expected} entries and {args.feeds} not-modified feeds, got "
            f"{ours['entries']} and {ours.get('second_not_modified')}"
        )


if __name__ == "__main__":
    main()
