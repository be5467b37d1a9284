"""The service as it is deployed: `syndication run` and `syndication worker` as
subprocesses, sources on a loopback HTTP server, digests to a loopback SMTP server
(aiosmtpd), checked over HTTP and SMTP and in the store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from syndication.store import Store
from tests.httpserver import TestServer
from tests.smtpserver import SmtpServer
from tests.test_cli import syndication
from tests.test_core import ITEMS, rss
from tests.test_digest_cli import parse


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as srv:
        srv.add("/tin.rss", rss(ITEMS, start=datetime.now(UTC)))
        yield srv


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as srv:
        yield srv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(
    tmp_path: Path, store_url: str, server: TestServer, smtp: SmtpServer, *, schedule: str, extra: str = ""
) -> Path:
    path = tmp_path / "syndication.toml"
    path.write_text(
        f"""
[site]
title = "Cổng thông tin thử nghiệm"
base_url = "https://syn.example.vn/"
[storage]
url = "{store_url}"
[fetch]
parse_workers = 1
[service]
tick = "1s"
stop_timeout = "10s"
[mail]
transport = "smtp"
host = "{smtp.host}"
port = {smtp.port}
security = "none"
from_address = "ban-tin@example.org"
{extra}
[[digests]]
name = "daily"
title = "Bản tin hằng ngày"
schedule = "{schedule}"
grace = "1m"
[[categories]]
slug = "tin-tuc-su-kien"
title = "Tin tức - Sự kiện"
[[sources]]
id = "tin"
url = "{server.url("/tin.rss")}"
categories = ["tin-tuc-su-kien"]
allow_private_network = true
""",
        encoding="utf-8",
    )
    return path


def start(conf: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "SYNDICATION_CONFIG"}
    cmd = [sys.executable, "-m", "syndication", "--config", str(conf), *args]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_for(what: str, check: Callable[[], bool], *, seconds: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            pytest.fail(f"the process exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode("utf-8"))
    except OSError:
        return ""


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    """Rows of ``sql`` on the store at ``url`` (engine disposed after)."""
    engine = create_engine(url)
    try:
        with engine.connect() as db:
            return [tuple(row) for row in db.execute(text(sql))]
    finally:
        engine.dispose()


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the service did not stop within 40 s of the signal")


def test_run_polls_serves_feeds_sends_digests_and_stops_cleanly(
    tmp_path: Path, server: TestServer, smtp: SmtpServer
) -> None:
    store_url = f"sqlite:///{tmp_path / 'syndication.db'}"
    conf = write_config(tmp_path, store_url, server, smtp, schedule="* * * * *")
    people = tmp_path / "people.csv"
    people.write_text(
        "email,name,organisation,digest\n"
        "bi-thu@example.org,Nguyễn Thị Hoà,Chi bộ Văn phòng,daily\n"
        "pho@example.org,Trần Văn Uỷ,Chi bộ Văn phòng,daily\n",
        encoding="utf-8",
    )
    imported = syndication("subscribers", "import", str(people), config=conf)
    assert imported.returncode == 0, imported.stderr
    port = free_port()
    log = tmp_path / "run.log"
    proc = start(conf, "run", "--port", str(port), log=log)
    try:
        base = f"http://127.0.0.1:{port}"
        # Polled at start by the worker, published by the web server of the same process.
        wait_for("the feed", lambda: ITEMS[0][1] in get(base + "/feeds/all.atom"), seconds=30, proc=proc)
        lines = log.read_text(encoding="utf-8").splitlines()
        assert any(f"feeds served at http://localhost:{port}/feeds/all.rss" in line for line in lines)
        assert any(f"digests go to SMTP {smtp.host}:{smtp.port}" in line for line in lines)
        assert any("next run: digest daily at" in line for line in lines)
        # The digest fires at the next minute and holds what was polled before it.
        wait_for("the digests", lambda: len(smtp.messages) >= 2, seconds=75, proc=proc)
        messages = {m.rcpt_tos[0]: parse(m.data) for m in smtp.messages}
        assert sorted(messages) == ["bi-thu@example.org", "pho@example.org"]
        hoa = messages["bi-thu@example.org"]
        assert hoa["To"].addresses[0].display_name == "Nguyễn Thị Hoà"
        assert ITEMS[1][1] in hoa.get_body(("html",)).get_content()
        assert ITEMS[1][1] in hoa.get_body(("plain",)).get_content()
        # Operations: the scheduler of this process is alive; what it did is counted.
        health = json.loads(get(base + "/healthz"))
        assert (health["status"], health["store"], health["scheduler"]) == ("ok", "ok", "alive")
        assert health["last_poll_age_seconds"] is not None
        wait_for(
            "the sends to be counted",
            lambda: 'syndication_deliveries_attempted_total{result="sent"} 2.0' in get(base + "/metrics"),
            seconds=10,
            proc=proc,
        )
        metrics = get(base + "/metrics")
        assert 'syndication_polls_total{result="new",source="tin"} 1.0' in metrics
        assert 'syndication_deliveries{status="sent"} 2.0' in metrics
    finally:
        code = stop(proc)
    output = log.read_text(encoding="utf-8")
    assert code == 0, output
    assert "SIGTERM: stopping" in output
    assert output.rstrip().endswith("stopped") or "stopped" in output.splitlines()[-1], output
    assert "Traceback" not in output, output
    with Store(store_url) as store:
        assert store.list_nodes() == []  # it left the list of processes
        assert all(s.next_attempt is not None for s in store.source_states().values())
    assert query(store_url, "SELECT count(*) FROM sources WHERE lease_owner IS NOT NULL") == [(0,)]
    assert query(store_url, "SELECT count(*) FROM deliveries WHERE status = 'sending'") == [(0,)]


def test_run_on_the_bundled_config_works_offline(tmp_path: Path) -> None:
    # The README's first command: a fresh clone, no configuration of one's own.
    root = Path(__file__).parent.parent
    copy = tmp_path / "config"
    shutil.copytree(root / "config", copy)
    conf = copy / "syndication.toml"
    port = free_port()
    log = tmp_path / "run.log"
    proc = start(conf, "run", "--port", str(port), log=log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(
            "the bundled articles", lambda: "<entry>" in get(base + "/feeds/all.atom"), seconds=40, proc=proc
        )
        assert "Cổng thông tin" in get(base + "/")
        output = log.read_text(encoding="utf-8")
        assert "digests go to the Maildir" in output
        assert str(tmp_path / "var" / "outbox") in output
    finally:
        code = stop(proc, signal.SIGINT)
    assert code == 0, log.read_text(encoding="utf-8")
    assert (tmp_path / "var" / "syndication.db").is_file()


SUBSCRIBERS = 2000


def queue_digest(tmp_path: Path, store_url: str, server: TestServer, smtp: SmtpServer) -> Path:
    """2,000 subscribers and one digest issue queued in the outbox; the config file."""
    # Each worker sends at most 150 messages/s, so 2,000 take several seconds: long
    # enough for both to take part, and for one to be killed part-way.
    conf = write_config(
        tmp_path, store_url, server, smtp, schedule="0 7 * * *", extra='rate = 150\npool = 2\nlease = "3s"'
    )
    people = tmp_path / "people.csv"
    people.write_text(
        "email,name,organisation,digest\n"
        + "".join(
            f"can-bo-{n}@example.org,Cán bộ số {n},Chi bộ {n % 70},daily\n" for n in range(SUBSCRIBERS)
        ),
        encoding="utf-8",
    )
    assert syndication("subscribers", "import", str(people), config=conf).returncode == 0
    assert syndication("fetch", config=conf).returncode == 0
    queued = syndication("digest", "send", "daily", "--queue-only", config=conf)
    assert queued.returncode == 0, queued.stderr
    assert f"{SUBSCRIBERS} messages queued" in queued.stdout
    assert smtp.messages == []  # queued only: the workers send
    return conf


def all_sent(store_url: str) -> Callable[[], bool]:
    def check() -> bool:
        with Store(store_url) as store:
            issue = store.list_issues("daily")[0]
            return store.delivery_counts(issue.id)["sent"] == SUBSCRIBERS

    return check


def sent_by_owner(store_url: str) -> dict[object, int]:
    rows = query(
        store_url, "SELECT lease_owner, count(*) FROM deliveries WHERE status = 'sent' GROUP BY lease_owner"
    )
    return {owner: int(str(count)) for owner, count in rows}


@pytest.mark.postgres
def test_two_workers_share_one_digest(
    tmp_path: Path, postgres_url: str, server: TestServer, smtp: SmtpServer
) -> None:
    conf = queue_digest(tmp_path, postgres_url, server, smtp)
    one = start(conf, "worker", log=tmp_path / "one.log")
    probe = free_port()  # one of them also answers its probes and metrics
    two = start(conf, "worker", "--port", str(probe), log=tmp_path / "two.log")
    try:
        wait_for("the digest to be sent", all_sent(postgres_url), seconds=90, proc=one)
        health = json.loads(get(f"http://127.0.0.1:{probe}/healthz"))
        assert (health["status"], health["scheduler"]) == ("ok", "absent")
        metrics = get(f"http://127.0.0.1:{probe}/metrics")
        sent_here = next(
            line
            for line in metrics.splitlines()
            if line.startswith('syndication_deliveries_attempted_total{result="sent"}')
        )
        assert float(sent_here.split()[-1]) > 0
        assert f'syndication_deliveries{{status="sent"}} {float(SUBSCRIBERS)}' in metrics
        assert get(f"http://127.0.0.1:{probe}/feeds/all.rss") == ""  # a worker publishes no feeds
    finally:
        codes = [stop(one), stop(two)]
    assert codes == [0, 0], (tmp_path / "one.log").read_text(encoding="utf-8")

    per_address = Counter(m.rcpt_tos[0] for m in smtp.messages)
    assert len(per_address) == SUBSCRIBERS
    assert set(per_address.values()) == {1}  # every subscriber exactly one message
    owners = sent_by_owner(postgres_url)
    assert len(owners) == 2, owners  # both workers did part of the work
    assert min(owners.values()) > 0
    assert sum(owners.values()) == SUBSCRIBERS


@pytest.mark.postgres
def test_a_killed_workers_leased_deliveries_are_finished_by_the_other(
    tmp_path: Path, postgres_url: str, server: TestServer, smtp: SmtpServer
) -> None:
    conf = queue_digest(tmp_path, postgres_url, server, smtp)
    one = start(conf, "worker", log=tmp_path / "one.log")
    two = start(conf, "worker", log=tmp_path / "two.log")
    try:
        wait_for(
            "both workers to send",
            lambda: len(smtp.messages) >= 400 and len(sent_by_owner(postgres_url)) == 2,
            seconds=60,
            proc=one,
        )
        one.send_signal(signal.SIGKILL)  # dies holding leased deliveries
        one.wait(timeout=10)
        assert len(smtp.messages) < SUBSCRIBERS, "the worker must be killed part-way"
        wait_for("the other worker to finish", all_sent(postgres_url), seconds=90, proc=two)
    finally:
        if one.poll() is None:
            one.kill()
        code = stop(two)
    assert code == 0, (tmp_path / "two.log").read_text(encoding="utf-8")

    per_address = Counter(m.rcpt_tos[0] for m in smtp.messages)
    message_ids = {parse(m.data)["Message-ID"] for m in smtp.messages}
    assert len(per_address) == SUBSCRIBERS  # everyone got the digest
    assert len(message_ids) == SUBSCRIBERS  # a duplicate can only repeat its Message-ID
    # The survivor sent what the dead one had leased, after the lease ran out (a second
    # attempt). Only such a row can arrive twice: the dead worker had sent it but not yet
    # marked it sent. Every other subscriber got exactly one message.
    taken_over = {str(a) for (a,) in query(postgres_url, "SELECT address FROM deliveries WHERE attempts > 1")}
    assert taken_over
    assert {a for a, n in per_address.items() if n > 1} <= taken_over
    assert max(per_address.values()) <= 2
    assert len(sent_by_owner(postgres_url)) == 2


def test_run_on_a_port_in_use_is_one_clear_error(
    tmp_path: Path, server: TestServer, smtp: SmtpServer
) -> None:
    conf = write_config(tmp_path, f"sqlite:///{tmp_path / 's.db'}", server, smtp, schedule="0 7 * * *")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = syndication("run", "--port", str(port), config=conf)
    assert result.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_scheduler_and_web_without_workers_then_a_worker_does_the_polling(
    tmp_path: Path, server: TestServer, smtp: SmtpServer
) -> None:
    # The documented deployment, on one machine: `run --no-workers` plus a `worker`.
    store_url = f"sqlite:///{tmp_path / 'syndication.db'}"
    conf = write_config(tmp_path, store_url, server, smtp, schedule="0 7 * * *")
    port = free_port()
    front = start(conf, "run", "--no-workers", "--port", str(port), log=tmp_path / "front.log")
    worker: subprocess.Popen[bytes] | None = None
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for("the web server", lambda: "Cổng thông tin" in get(base + "/"), seconds=30, proc=front)
        time.sleep(1.5)  # a tick and more: a process without workers polls nothing
        assert server.hits("/tin.rss") == 0
        assert ITEMS[0][1] not in get(base + "/feeds/all.atom")
        health = json.loads(get(base + "/healthz"))
        assert (health["status"], health["scheduler"]) == ("ok", "alive")
        assert "no workers here" in (tmp_path / "front.log").read_text(encoding="utf-8")

        worker = start(conf, "worker", log=tmp_path / "worker.log")
        # The worker polls; the front notices the change in the store and rebuilds the feeds.
        wait_for("the feed", lambda: ITEMS[0][1] in get(base + "/feeds/all.atom"), seconds=30, proc=front)
        assert server.hits("/tin.rss") == 1
        status = syndication("status", config=conf)
        assert status.returncode == 0, status.stderr
        processes = status.stdout[status.stdout.index("Processes") :]
        roles = sorted(line.split()[1] for line in processes.splitlines()[3:] if line.strip())
        assert roles == ["scheduler", "worker"], status.stdout
    finally:
        codes = [stop(p) for p in (worker, front) if p is not None]
    assert codes == [0, 0]


def test_status_tells_a_process_that_died_from_one_at_work(
    tmp_path: Path, server: TestServer, smtp: SmtpServer
) -> None:
    """A worker killed with SIGKILL cannot take itself off the list: ``status`` must not
    call it running once its heartbeats stop, while a live one stays listed as running;
    a day later it is forgotten."""
    store_url = f"sqlite:///{tmp_path / 'syndication.db'}"
    conf = write_config(tmp_path, store_url, server, smtp, schedule="0 7 * * *")
    doomed = start(conf, "worker", log=tmp_path / "doomed.log")
    alive = start(conf, "worker", log=tmp_path / "alive.log")
    now = datetime.now(UTC)

    def owners() -> set[str]:
        try:
            return {str(owner) for (owner,) in query(store_url, "SELECT owner FROM nodes")}
        except Exception:  # the table is not there before the first start
            return set()

    def age_every_heartbeat(ago: timedelta, live: str) -> None:
        # Time passes for the store; only a live process beats again.
        stamp = (now - ago).strftime("%Y-%m-%d %H:%M:%S.%f")
        engine = create_engine(store_url)
        try:
            with engine.begin() as db:
                db.execute(text("UPDATE nodes SET heartbeat = :when"), {"when": stamp})
        finally:
            engine.dispose()
        beaten = f"SELECT heartbeat > '{stamp}' FROM nodes WHERE owner = '{live}'"
        wait_for("a new heartbeat", lambda: query(store_url, beaten) == [(1,)], seconds=30, proc=alive)

    try:
        wait_for("both workers", lambda: len(owners()) == 2, seconds=30, proc=alive)
        (dead,) = [o for o in owners() if o.split(":")[-2] == str(doomed.pid)]
        (live,) = [o for o in owners() if o.split(":")[-2] == str(alive.pid)]
        doomed.kill()
        doomed.wait(timeout=10)

        age_every_heartbeat(timedelta(minutes=10), live)
        status = syndication("status", config=conf)
        assert status.returncode == 0, status.stderr
        processes = status.stdout[status.stdout.index("Processes") :]
        assert [line for line in processes.splitlines() if live in line], status.stdout
        table = "\n".join(line for line in processes.splitlines() if not line.startswith("lost"))
        assert dead not in table, status.stdout
        (lost,) = [line for line in status.stdout.splitlines() if dead in line]
        seen = (now - timedelta(minutes=10)).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
        assert lost.startswith(f"lost: {dead} (worker), last seen {seen:%d/%m/%Y %H:%M}"), status.stdout

        # A day later it is forgotten, by any process's heartbeat (no scheduler runs here).
        age_every_heartbeat(timedelta(days=1, minutes=10), live)
        assert dead not in syndication("status", config=conf).stdout
        assert owners() == {live}
    finally:
        codes = [stop(alive)]
        if doomed.poll() is None:
            doomed.kill()
    assert codes == [0]
