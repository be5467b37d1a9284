"""One process of the running service: the web server, the scheduler and the
workers on one event loop (``syndication run``), or only some of them
(``run --no-workers``: scheduler and web server; ``syndication worker``: workers).

Start: the store is brought up to date, page 1 of every feed is built, runs missed
while the service was down are caught up (``ServiceScheduler.catch_up``), then the
HTTP server, the scheduler and the workers start, and the first lines logged say
where feeds are served, where digests go and when each job runs next.

Stop (SIGINT or SIGTERM): the scheduler fires nothing more, workers start no new
poll or message, what they claimed and did not start is given back, what is in
flight (a poll, an SMTP transaction) finishes within ``service.stop_timeout``
(else its lease runs out and another worker takes it up), the HTTP server closes,
and the process leaves the store's list of nodes. A second signal stops at once.

Must not: hold business logic (core does) or parse options (cli does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from syndication.config import Settings
from syndication.core import Syndication
from syndication.core.operations import OperationsService
from syndication.core.service import Worker
from syndication.errors import SyndicationError
from syndication.scheduler import ServiceScheduler, local_time
from syndication.store import display_url
from syndication.types import HealthReport
from syndication.web.app import WebApp, create_app, create_operations_app
from syndication.web.server import ASGIApp, bound_socket
from syndication.web.server import config as server_config

log = logging.getLogger("syndication.service")


@dataclass(frozen=True, slots=True, kw_only=True)
class Roles:
    """What this process does."""

    web: bool = True
    scheduler: bool = True
    workers: bool = True

    @property
    def name(self) -> str:
        if self.scheduler and self.workers:
            return "run"
        if self.scheduler:
            return "scheduler"
        return "worker" if self.workers else "web"


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: this process stops everything together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def run_service(
    settings: Settings,
    *,
    roles: Roles,
    templates: Path,
    host: str,
    port: int,
    stop: asyncio.Event | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set), then stop gracefully."""
    stop = stop or asyncio.Event()
    force = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second signal: stopping now")
            force.set()
        else:
            log.info("%s: stopping (no new work; what is in flight finishes)", signal.Signals(signum).name)
            stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(signum, on_signal, signum)
    try:
        async with Syndication(settings) as app:
            await _run(app, settings, roles, templates, host, port, stop, force, on_warning)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)


async def _run(
    app: Syndication,
    settings: Settings,
    roles: Roles,
    templates: Path,
    host: str,
    port: int,
    stop: asyncio.Event,
    force: asyncio.Event,
    on_warning: Callable[[str], None] | None,
) -> None:
    await app.start()
    worker = Worker(app) if roles.workers else None
    scheduler = (
        ServiceScheduler(app, role=roles.name, on_planned=worker.wake.set if worker else None)
        if roles.scheduler
        else None
    )
    started = app.clock()
    tasks: list[asyncio.Task[None]] = []
    servers: list[_Server] = []
    watcher: asyncio.Task[None] | None = None

    async def health() -> HealthReport:
        # "absent" where this process runs no scheduler (`serve`, `worker`); else its heartbeat.
        if scheduler is None:
            return await app.health()
        return await app.health(scheduler_heartbeat=scheduler.last_beat or started)

    operations = OperationsService(metrics=app.metrics, health=health, snapshot=app.metrics_snapshot)
    listeners: list[tuple[str, int, ASGIApp]] = []
    admin = _admin_address(settings, roles)
    if roles.web:
        asgi = await build_web(
            app, settings, templates, on_warning, operations, serve_operations=admin is None
        )
        listeners.append((host, port, asgi))
        if admin is not None:
            listeners.append((*admin, create_operations_app(operations)))
    elif port:
        listeners.append((host, port, create_operations_app(operations)))  # a worker's probes and metrics
    # Bound here, not by uvicorn, so that a port in use is one clear error line; all of
    # them before any server starts.
    sockets: list[socket.socket] = []
    try:
        for where, number, _ in listeners:
            sockets.append(_listen(where, number))
    except SyndicationError:
        for sock in sockets:
            sock.close()
        raise
    for (where, number, served), sock in zip(listeners, sockets, strict=True):
        server = _Server(
            server_config(
                served,
                host=where,
                port=number,
                log_level="warning",
                lifespan="off",
                request_timeout=settings.server.request_timeout.total_seconds(),
                max_header_bytes=settings.server.max_header_bytes,
                limit_concurrency=settings.server.limit_concurrency,
            )
        )
        servers.append(server)
        tasks.append(asyncio.create_task(server.serve(sockets=[sock])))
        while not server.started and not tasks[-1].done():
            await asyncio.sleep(0.02)
        if tasks[-1].done():
            for running in servers:
                running.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            raise SyndicationError(f"the web server did not start on {where}:{number}")
    if roles.web:
        watcher = asyncio.create_task((await app.feed_service()).watch())
    if scheduler is not None:
        await scheduler.beat()
        runs, _ = await scheduler.catch_up()
        for run in runs:
            if run.outcome == "planned":
                log.info("caught up with digest %s of %s", run.digest, run.scheduled_for.isoformat())
        scheduler.start()
    heartbeat: asyncio.Task[None] | None = None
    if scheduler is None:
        heartbeat = asyncio.create_task(app.keep_alive(roles.name, started, stop))
    if worker is not None:
        tasks.append(asyncio.create_task(worker.run(stop)))
    _log_start(app, settings, roles, host, port, admin, scheduler)
    try:
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        if scheduler is not None:
            scheduler.shutdown()
        if worker is not None:
            # The worker bounds its own wait (service.stop_timeout); a second signal cuts it.
            work = tasks[-1]
            forced = asyncio.ensure_future(force.wait())
            await asyncio.wait([work, forced], return_when=asyncio.FIRST_COMPLETED)
            forced.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
        for server in servers:
            server.should_exit = True
        for task in tasks[: len(servers)]:
            await task
    finally:
        for task in [t for t in (watcher, heartbeat) if t is not None]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # (The worker gave its source leases back as it stopped.)
        with contextlib.suppress(Exception):
            await app.leave()
    log.info("stopped")


def _admin_address(settings: Settings, roles: Roles) -> tuple[str, int] | None:
    """Where a web process serves ``/healthz`` and ``/metrics`` apart (``server.admin_port``), if set."""
    port = settings.server.admin_port
    return (settings.server.admin_host, port) if roles.web and port is not None else None


def _listen(host: str, port: int) -> socket.socket:
    try:
        return bound_socket(host, port)
    except OSError as exc:
        raise SyndicationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


async def build_web(
    app: Syndication,
    settings: Settings,
    templates: Path,
    on_warning: Callable[[str], None] | None,
    operations: OperationsService,
    *,
    serve_operations: bool = True,
) -> WebApp:
    """The web app of this service: feeds, pages, and, with digests, the subscription
    pages; ``/healthz`` and ``/metrics`` too unless ``serve_operations`` is False."""
    feeds = await app.feed_service()
    subscriptions = await app.subscription_service() if settings.digests else None
    secret = settings.subscribe.secret.encode() if settings.subscribe.secret else None
    if subscriptions is not None and secret is None and on_warning is not None:
        on_warning(
            "warning: subscribe.secret_env is not set: forms signed with a random key stop "
            "working when the server restarts or runs in several processes"
        )
    return create_app(
        feeds,
        templates_dir=templates,
        cache_max_age=int(settings.feeds.cache_max_age.total_seconds()),
        timezone=settings.site.timezone,
        subscriptions=subscriptions,
        secret=secret,
        trusted_proxies=settings.server.trusted_proxies,
        proxy_header=settings.server.proxy_header,
        # Wall time, not monotonic: form tokens must stay valid across restarts and processes.
        clock=time.time,
        archive=(await app.digest_service()).archive if settings.digests else None,
        operations=operations,
        serve_operations=serve_operations,
    )


def _log_start(
    app: Syndication,
    settings: Settings,
    roles: Roles,
    host: str,
    port: int,
    admin: tuple[str, int] | None,
    scheduler: ServiceScheduler | None,
) -> None:
    """The first lines: where feeds are served, where digests go, when jobs run next."""
    if not roles.web and port:
        log.info("health and metrics at http://%s:%d/healthz and /metrics", host, port)
    if admin is not None:
        log.info("health and metrics at http://%s:%d/healthz and /metrics (not on port %d)", *admin, port)
    if roles.web:
        shown = "localhost" if host in ("127.0.0.1", "::1", "0.0.0.0", "::") else host  # noqa: S104
        local = f"http://{shown}:{port}"
        log.info(
            "feeds served at %s/feeds/all.rss (all feeds: %s/ ; public address %s)",
            local,
            local,
            settings.site.base_url,
        )
    mail = settings.mail
    if settings.digests:
        where = (
            f"the Maildir {mail.maildir}" if mail.transport == "maildir" else f"SMTP {mail.host}:{mail.port}"
        )
        log.info("digests go to %s, from %s", where, mail.from_address)
    log.info("store: %s; this process: %s (%s)", display_url(settings.storage.url), app.owner, roles.name)
    if roles.workers:
        log.info("polling %d sources; sending queued deliveries", len(settings.sources))
    elif roles.scheduler:
        log.info("no workers here: `syndication worker` processes poll sources and send deliveries")
    if scheduler is not None:
        for name, when in scheduler.next_runs():
            log.info("next run: %s at %s", name, local_time(when, settings.site.timezone))
