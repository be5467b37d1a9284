"""Feeds benchmark: rebuild time, and syndication's HTTP server against nginx on the same bytes.

With a store of 10,000 full-content Vietnamese articles it measures
  * the time to rebuild every affected feed after one new article arrives;
  * requests/s for the 50-item full-content feed /feeds/all.rss, answered 200 and
    answered 304 (If-None-Match), with wrk on loopback for 10 s each, side by side
    with nginx (one worker, started here with a config written here) serving the
    same bytes as a static file,
and prints the ratios. Run:  make bench-feeds  (needs wrk and nginx: apt-get install wrk nginx-light).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import free_port, paragraph

CATEGORIES = ["tin-tuc-su-kien", "xay-dung-dang", "van-hoa-xa-hoi", "kinh-te", "quoc-phong-an-ninh"]


def write_config(work: Path, sources: int) -> Path:
    lines = [
        '[site]\ntitle = "Cổng thông tin Đảng bộ Khối"\nbase_url = "https://portal.example.vn/"\n'
        'description = "Tin bài của Đảng bộ Khối các cơ quan tỉnh"\n',
        f'[storage]\nurl = "sqlite:///{work}/bench.db"\n',
        "[feeds]\nitems = 50\n",
    ]
    lines += [f'[[categories]]\nslug = "{c}"\ntitle = "Chuyên mục {c}"\n' for c in CATEGORIES]
    lines += [
        f'[[sources]]\nid = "nguon-{i}"\nurl = "https://nguon{i}.example.vn/rss"\n'
        f'categories = ["{CATEGORIES[i % len(CATEGORIES)]}"]\n'
        for i in range(sources)
    ]
    path = work / "bench.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def article(n: int, rng: random.Random) -> object:
    from syndication.types import ArticleData

    body = "".join(f"<p>{paragraph(rng, 70)}</p>" for _ in range(8))
    return ArticleData(
        guid=None,
        url=f"https://portal.example.vn/tin/bai-{n}.html",
        title=f"{paragraph(rng, 12)} số {n}",
        summary=paragraph(rng, 40),
        content_html=body + f'<p><img src="https://portal.example.vn/anh/{n}.jpg" alt="Ảnh"></p>',
        author="Lê Chung",
        published=datetime(2026, 11, 27, 1, tzinfo=UTC) - timedelta(minutes=n),
        image_url=f"https://portal.example.vn/anh/{n}.jpg",
    )


def fill_store(conf: Path, count: int, sources: int) -> None:
    from syndication import config
    from syndication.ingest.identity import keys_for
    from syndication.store import Store
    from syndication.types import KeyedArticle

    settings = config.load(conf)
    rng = random.Random(2026)
    store = Store(settings.storage.url)
    store.upgrade()
    store.sync_sources(settings.sources)
    now = datetime(2026, 11, 27, 2, tzinfo=UTC)
    per_source = count // sources
    for i, spec in enumerate(settings.sources):
        batch = []
        for k in range(per_source):
            data = article(i * per_source + k, rng)
            batch.append(KeyedArticle(data=data, keys=keys_for(data, source_id=spec.id)))  # type: ignore[arg-type]
        store.save_articles(source_id=spec.id, categories=spec.categories, articles=batch, now=now)
    store.close()


def rebuild_time(conf: Path) -> tuple[float, list[str], float]:
    """Seconds to rebuild after one new article, the feeds rebuilt, and the first full build."""
    from syndication import config
    from syndication.core import Syndication
    from syndication.ingest.identity import keys_for
    from syndication.types import KeyedArticle

    settings = config.load(conf)

    async def run() -> tuple[float, list[str], float]:
        async with Syndication(settings) as syn:
            t0 = time.perf_counter()
            service = await syn.feed_service()
            first = time.perf_counter() - t0
            spec = settings.sources[0]
            data = article(10**6, random.Random(1))
            keyed = KeyedArticle(data=data, keys=keys_for(data, source_id=spec.id))  # type: ignore[arg-type]
            await asyncio.to_thread(
                syn.store.save_articles,
                source_id=spec.id,
                categories=spec.categories,
                articles=[keyed],
                now=datetime(2026, 11, 27, 3, tzinfo=UTC),
            )
            t1 = time.perf_counter()
            names = await service.refresh()
            return time.perf_counter() - t1, names, first

    return asyncio.run(run())


def wait_port(port: int) -> None:
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def head_etag(url: str) -> str:
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD")) as response:
        return str(response.headers["ETag"])


def wrk(url: str, seconds: int, etag: str | None = None) -> float:
    cmd = ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", url]
    if etag:
        cmd[1:1] = ["-H", f"If-None-Match: {etag}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match is None:
        raise SystemExit(f"wrk printed no rate:\n{out}")
    if non2xx:
        raise SystemExit(f"wrk saw error responses from {url}:\n{out}")
    return float(match.group(1))


def start_nginx(root: Path, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
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
    types {{ application/rss+xml rss; }}
    charset utf-8;
    charset_types application/rss+xml;
    sendfile on;
    etag on;
    keepalive_requests 1000000;
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
    wait_port(port)
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--sources", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install wrk nginx-light)")

    with tempfile.TemporaryDirectory(prefix="syndication-bench-feeds-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        conf = write_config(work, args.sources)
        t0 = time.perf_counter()
        fill_store(conf, args.articles, args.sources)
        print(
            f"store: {args.articles} articles from {args.sources} sources, "
            f"filled in {time.perf_counter() - t0:.1f} s"
        )
        rebuild, names, first = rebuild_time(conf)
        print(f"first build of every feed's page 1: {first * 1000:.0f} ms")
        print(
            f"rebuild after one new article: {rebuild * 1000:.0f} ms ({len(names)} feeds: {', '.join(names)})"
        )

        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "syndication", "--config", str(conf), "serve", "--port", str(port)],
            stderr=subprocess.DEVNULL,
        )
        nginx = None
        try:
            wait_port(port)
            ours = f"http://127.0.0.1:{port}/feeds/all.rss"
            with urllib.request.urlopen(ours) as response:
                body = response.read()
            root = work / "www" / "feeds"
            root.mkdir(parents=True)
            (root / "all.rss").write_bytes(body)
            root.parent.chmod(0o755)
            nginx, nport = start_nginx(root.parent, work)
            theirs = f"http://127.0.0.1:{nport}/feeds/all.rss"
            with urllib.request.urlopen(theirs) as response:
                assert hashlib.sha256(response.read()).digest() == hashlib.sha256(body).digest()
            print(
                f"feed: /feeds/all.rss, {len(body) / 1024:.0f} KiB, 50 full-content items; "
                f"wrk -t1 -c32 -d{args.seconds}s"
            )
            rows = []
            for label, etag_ours, etag_theirs in (
                ("200", None, None),
                ("304", head_etag(ours), head_etag(theirs)),
            ):
                n = wrk(theirs, args.seconds, etag_theirs)
                s = wrk(ours, args.seconds, etag_ours)
                rows.append((label, n, s))
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=10)
            if nginx is not None:
                nginx.terminate()
                nginx.wait()
    print(f"{'':10} {'nginx req/s':>12} {'syndication req/s':>18} {'ratio':>7} {'target':>7}")
    targets = {"200": 0.5, "304": 0.35}
    for label, n, s in rows:
        print(f"{label:10} {n:>12.0f} {s:>18.0f} {s / n:>6.2f}x {targets[label]:>6.2f}x")
    print(f"rebuild after one new article: {rebuild:.3f} s (target < 1 s)")
    print(f"cpus={os.cpu_count()}")


if __name__ == "__main__":
    main()
