"""Digest benchmark: build and send one digest to 10,000 subscribers, against the sink's limit.

10,000 active subscribers spread over 20 category combinations, 30 new articles.
In one run it measures:
  * the SMTP sink's acceptance limit: a minimal sender pushing pre-built bytes of a
    real digest message over 16 connections (nothing else costs anything there);
  * syndication's whole pipeline: selection, rendering, outbox bookkeeping in
    SQLite and sending over SMTP (`DigestService.plan` + `send`), to the same sink;
and prints messages/s, the ratio and the peak memory. The sink is Postfix's
smtp-sink (apt-get install postfix) on 127.0.0.1. Run:  make bench-digest
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from feeds import article, wait_port
from ingest import free_port

CATEGORIES = [
    "tin-tuc-su-kien",
    "xay-dung-dang",
    "van-hoa-xa-hoi",
    "kinh-te",
    "quoc-phong-an-ninh",
    "doan-the",
]


def combinations() -> list[tuple[str, ...]]:
    """20 distinct category selections (the empty one means all)."""
    combos: list[tuple[str, ...]] = [()]
    for size in (1, 2, 3):
        combos += list(itertools.combinations(CATEGORIES, size))
    return combos[:20]


def write_config(work: Path, port: int) -> Path:
    lines = [
        '[site]\ntitle = "Cổng thông tin Đảng bộ Khối"\nbase_url = "https://portal.example.vn/"\n',
        f'[storage]\nurl = "sqlite:///{work}/bench.db"\n',
        f'[mail]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        'from_address = "ban-tin@example.org"\nfrom_name = "Ban Tuyên giáo Đảng uỷ Khối"\npool = 16\n',
        '[[digests]]\nname = "daily"\ntitle = "Bản tin hằng ngày"\nschedule = "0 7 * * *"\nmax_items = 40\n',
    ]
    lines += [f'[[categories]]\nslug = "{c}"\ntitle = "Chuyên mục {c}"\n' for c in CATEGORIES]
    lines.append('[[sources]]\nid = "portal"\nurl = "https://portal.example.vn/rss"\n')
    path = work / "bench.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def fill(conf: Path, subscribers: int, articles: int) -> datetime:
    import random

    from syndication import config
    from syndication.ingest.identity import keys_for
    from syndication.store import Store
    from syndication.types import KeyedArticle, SubscriberData

    settings = config.load(conf)
    store = Store(settings.storage.url)
    store.upgrade()
    store.sync_sources(settings.sources)
    now = datetime.now(UTC) - timedelta(hours=1)
    rng = random.Random(7)
    for n in range(articles):
        # Published within the digest's period before now, as news a daily digest carries
        # (the feeds benchmark's articles have fixed dates; a first digest holds only what
        # was published within its period).
        published = now - timedelta(minutes=n)
        data = dataclasses.replace(article(n, rng), published=published, updated=published)  # type: ignore[type-var]
        keyed = KeyedArticle(data=data, keys=keys_for(data, source_id="portal"))
        cats = [CATEGORIES[n % len(CATEGORIES)], CATEGORIES[(n + 2) % len(CATEGORIES)]]
        store.save_articles(source_id="portal", categories=cats, articles=[keyed], now=now)
    combos = combinations()
    rows = [
        SubscriberData(
            address=f"can-bo-{n}@chibo-{n % 70}.example.org",
            display_name=f"Đồng chí Nguyễn Văn Hoà {n}",
            organisation=f"Chi bộ số {n % 70}",
            categories=combos[n % len(combos)],
            digest="daily",
        )
        for n in range(subscribers)
    ]
    store.upsert_subscribers(rows, now=now)
    store.close()
    return now


def run_pipeline(conf: Path, profile: bool = False) -> dict[str, float]:
    from syndication import config
    from syndication.core import Syndication

    settings = config.load(conf)

    async def go() -> dict[str, float]:
        async with Syndication(settings) as syn:
            service = await syn.digest_service()
            t0 = time.perf_counter()
            plan = await service.plan("daily")
            t1 = time.perf_counter()
            assert plan.issue is not None
            summary = await service.send(plan.issue)
            t2 = time.perf_counter()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {
            "recipients": plan.recipients,
            "sent": summary.sent,
            "failed": summary.failed + summary.retrying,
            "plan_s": t1 - t0,
            "send_s": t2 - t1,
            "peak_mib": peak,
        }

    return asyncio.run(go())


async def sink_limit(port: int, message: bytes, count: int, connections: int = 16) -> float:
    """Messages/s a minimal sender gets through: pre-built bytes, one SMTP session per connection."""
    data = message.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    per = count // connections

    async def session() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def reply() -> bytes:
            while True:
                line = await reader.readline()
                if line[3:4] != b"-":
                    return line

        await reply()
        writer.write(b"EHLO bench.example.org\r\n")
        await writer.drain()
        await reply()
        for n in range(per):
            writer.write(
                f"MAIL FROM:<ban-tin@example.org>\r\nRCPT TO:<can-bo-{n}@example.org>\r\nDATA\r\n".encode()
            )
            await writer.drain()
            for _ in range(3):
                await reply()
            writer.write(data + b".\r\n")
            await writer.drain()
            await reply()
        writer.write(b"QUIT\r\n")
        await writer.drain()
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(connections)))
    return per * connections / (time.perf_counter() - t0)


def sample_message(conf: Path) -> bytes:
    """A real digest message of the benchmark, to push through the sink at its limit."""
    from syndication import addresses, config
    from syndication.core import Syndication
    from syndication.digest import select
    from syndication.types import Delivery, DigestIssue

    settings = config.load(conf)

    async def go() -> bytes:
        async with Syndication(settings) as syn:
            service = await syn.digest_service()
            subscriber = (await syn.list_subscribers(status="active"))[0]
            content = await service.content_for(service.spec("daily"), subscriber, now=datetime.now(UTC))
            issue = DigestIssue(
                id=1, digest="daily", scheduled_for=datetime.now(UTC), created=datetime.now(UTC)
            )
            rendered = service.renderer.render(
                content, archive_url=service.archive_url(1, select.content_key(content))
            )
            delivery = Delivery(
                id=1, issue_id=1, subscriber_id=subscriber.id, address=subscriber.address, status="sending",
                message_id="<bench@example.org>",
            )  # fmt: skip
            recipient = addresses.for_sending(subscriber.address)
            return service._message(service.spec("daily"), issue, delivery, subscriber, rendered, recipient)

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--articles", type=int, default=30)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--conf", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if os.environ.get("BENCH_PROFILE"):
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            result = run_pipeline(args.conf)
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
            print(repr(result))
            return
        print(repr(run_pipeline(args.conf)))
        return
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(sink).exists():
        raise SystemExit("smtp-sink is not installed (apt-get install postfix)")
    with tempfile.TemporaryDirectory(prefix="syndication-bench-digest-") as tmp:
        work = Path(tmp)
        port = free_port()
        proc = subprocess.Popen([sink, "-u", "nobody", f"127.0.0.1:{port}", "1024"])
        try:
            wait_port(port)
            conf = write_config(work, port)
            t0 = time.perf_counter()
            fill(conf, args.subscribers, args.articles)
            print(
                f"store: {args.subscribers} subscribers over 20 category selections, "
                f"{args.articles} new articles (filled in {time.perf_counter() - t0:.1f} s)"
            )
            message = sample_message(conf)
            print(f"message: {len(message) / 1024:.1f} KiB, multipart/alternative")
            limit = asyncio.run(sink_limit(port, message, 8000))
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--conf", str(conf)],
                check=True,
                capture_output=True,
                text=True,
            )
            result = eval(out.stdout.strip().splitlines()[-1])
        finally:
            proc.terminate()
            proc.wait()
    if result["sent"] < args.subscribers:
        # A figure over fewer messages than subscribers measures nothing: say so, loudly.
        raise SystemExit(
            f"only {result['sent']:.0f} of {args.subscribers} subscribers got the digest: {result}"
        )
    total = result["plan_s"] + result["send_s"]
    rate = result["sent"] / total
    print(f"sink limit (16 connections, pre-built bytes): {limit:.0f} msg/s")
    print(
        f"syndication: planned {result['recipients']:.0f} in {result['plan_s']:.2f} s, "
        f"sent {result['sent']:.0f} in {result['send_s']:.2f} s (failed {result['failed']:.0f})"
    )
    print(f"syndication whole pipeline: {rate:.0f} msg/s")
    print(f"ratio to the sink's limit: {rate / limit:.2f}x  (target >= 0.5x)")
    print(f"peak memory: {result['peak_mib']:.0f} MiB  (target < 300 MiB)")
    print(f"cpus={os.cpu_count()}")


if __name__ == "__main__":
    main()
