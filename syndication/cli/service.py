"""The long-running service and a look at it: ``syndication run``, ``worker``,
``serve``, ``status``, and ``feeds build`` (the served feeds written to a folder).
A thin shell over ``process`` and ``core``."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from syndication import config
from syndication.cli.common import _errors, _local, _run, _settings, _table, err, out
from syndication.cli.sources import _print_sources
from syndication.core import Syndication
from syndication.errors import SyndicationError
from syndication.scheduler import next_run

app = typer.Typer()

# The listening address of `run` and `serve`.
HostOption = Annotated[
    str | None, typer.Option("--host", metavar="ADDRESS", help="Listen here (default: server.host).")
]
PortOption = Annotated[
    int | None, typer.Option("--port", metavar="PORT", help="Listen on this port (default: server.port).")
]
feeds_app = typer.Typer(help="Build the published feeds (RSS, Atom, JSON Feed).", no_args_is_help=True)


@app.command()
def run(
    host: HostOption = None,
    port: PortOption = None,
    no_workers: Annotated[
        bool,
        typer.Option(
            "--no-workers",
            help="Only the scheduler and the web server; `syndication worker` processes do the work.",
        ),
    ] = False,
) -> None:
    """Run the service until stopped: poll sources on their schedules, rebuild feeds,
    send digests on theirs, and serve feeds and subscription pages over HTTP.

    One process, one event loop. Runs missed while it was down are sent once if
    they are still within their grace period. SIGINT or SIGTERM stop it
    gracefully (a second one at once).
    """
    _run_service(
        web=True, scheduler=True, workers=False if no_workers else None, host=host, port=port or None
    )


@app.command()
def worker(
    host: Annotated[
        str,
        typer.Option(
            "--host", metavar="ADDRESS", help="Address for --port (default 127.0.0.1).", show_default=False
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port",
            metavar="PORT",
            help="Also serve /healthz and /metrics of this worker on PORT (default: none).",
            show_default=False,
        ),
    ] = 0,
) -> None:
    """Poll due sources and send queued deliveries until stopped, sharing the work with
    every other worker on the same (PostgreSQL) store. No scheduler, no feeds: run one
    `syndication run --no-workers` beside any number of these."""
    _run_service(web=False, scheduler=False, workers=True, host=host, port=port)


def _service_logging() -> None:
    """A long-running process says what it does (INFO) unless told to be quieter."""
    logger = logging.getLogger("syndication")
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


@app.command()
def serve(
    host: HostOption = None,
    port: PortOption = None,
) -> None:
    """Serve the feeds and the pages for people over HTTP until stopped (Ctrl-C).

    Feeds are built at start and rebuilt when articles change, also when another
    process (syndication fetch) changed them.
    """
    _run_service(web=True, scheduler=False, workers=False, host=host, port=port or None)


def _run_service(
    *, web: bool, scheduler: bool, workers: bool | None, host: str | None, port: int | None
) -> None:
    """Run one process of the service until stopped. ``workers`` None: as ``service.workers``
    says; ``host`` and ``port`` None: as ``[server]`` says."""
    # Imported here: the web server and scheduler stay out of the other commands' start-up.
    from syndication.process import Roles, run_service

    with _errors():
        settings = _settings()
        chosen = Roles(
            web=web, scheduler=scheduler, workers=settings.service.workers if workers is None else workers
        )
        templates = _templates_dir() if chosen.web else Path()
        _service_logging()
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(
                run_service(
                    settings,
                    roles=chosen,
                    templates=templates,
                    host=host or settings.server.host,
                    port=settings.server.port if port is None else port,
                    on_warning=lambda text: err.print(text, markup=False, highlight=False),
                )
            )


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        return None
    return uvloop.new_event_loop


def _templates_dir() -> Path:
    """The templates shipped in the package (``syndication/web/templates`` is the
    repository's top-level ``templates/``, linked in development, copied in a wheel)."""
    shipped = Path(__file__).parent.parent / "web" / "templates"
    if not (shipped / "index.html").is_file():
        raise SyndicationError(f"the web templates are missing from {shipped}; reinstall syndication")
    return shipped


@feeds_app.command("build")
def feeds_build(
    out_dir: Annotated[
        Path,
        typer.Option("--out", "-o", metavar="DIR", help="Folder to write into (created if missing)."),
    ],
) -> None:
    """Write every feed (every page, three formats), the OPML list and the stylesheet to DIR,
    with the same bytes (and dates) the server sends, for nginx or a CDN; then ping the
    WebSub hub, if configured, for the feeds that changed."""
    with _errors():
        settings = _settings()
        written = _run(_export(settings, out_dir))
    out.print(f"wrote {len(written)} files to {out_dir}", markup=False, highlight=False)


async def _export(settings: config.Settings, out: Path) -> list[Path]:
    async with Syndication(settings) as syn:
        service = await syn.feed_service()
        try:
            written = await service.export(out)
        except OSError as exc:
            raise SyndicationError(f"cannot write to {out}: {exc.strerror or exc}") from exc
        await service.ping_pending()  # the export is what the hub will fetch
        return written


@app.command()
def status() -> None:
    """Show sources (last and next poll, last error), digests (next run, the last issue's
    delivered and failed counts), subscribers by status, and the processes at work (and
    the ones lost: silent without having stopped)."""
    with _errors():
        settings = _settings()
        reports, digests, subscribers, nodes = _run(_status(settings))
    tz = settings.site.tz
    _print_sources(reports, tz, "Sources")
    table = _table("Digests")
    for column in ("name", "schedule", "next run", "last issue", "sent", "failed", "waiting"):
        # (the last issue is shown by its id; `digest report` has the rest)
        table.add_column(column, no_wrap=True)
    now = datetime.now(tz=tz)
    for spec, latest in digests:
        upcoming = next_run(spec.schedule, timezone=settings.site.timezone, after=now)
        if latest is None:
            table.add_row(spec.name, spec.schedule, _local(upcoming, tz), "—", "", "", "")
            continue
        issue, counts = latest
        waiting = counts.get("pending", 0) + counts.get("sending", 0) + counts.get("retrying", 0)
        table.add_row(
            spec.name,
            spec.schedule,
            _local(upcoming, tz),
            str(issue.id),
            str(counts.get("sent", 0)),
            str(counts.get("failed", 0)),
            str(waiting),
        )
    out.print(table)
    out.print(
        "Subscribers: " + ", ".join(f"{count} {name}" for name, count in subscribers.items()),
        markup=False,
        highlight=False,
    )
    running = [report.node for report in nodes if not report.lost]
    if running:
        table = _table("Processes")
        for column in ("process", "role", "started", "last seen"):
            table.add_column(column, no_wrap=True)
        for node in running:
            table.add_row(node.owner, node.role, _local(node.started, tz), _local(node.heartbeat, tz))
        out.print(table)
    else:
        out.print("Processes: none running (start one with `syndication run`)", markup=False, highlight=False)
    for node in (report.node for report in nodes if report.lost):
        out.print(
            f"lost: {node.owner} ({node.role}), last seen {_local(node.heartbeat, tz)}: it stopped "
            f"without leaving (killed, or its machine went down); forgotten a day after that",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


async def _status(settings: config.Settings) -> tuple[Any, Any, dict[str, int], Any]:
    async with Syndication(settings) as syn:
        reports = await syn.source_reports()
        digests = [(spec, await syn.latest_issue(spec.name)) for spec in settings.digests]
        return reports, digests, await syn.subscriber_counts(), await syn.nodes()
