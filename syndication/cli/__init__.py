"""The ``syndication`` command: a thin shell over ``core``.

Our errors become one line on stderr (a bad config: one line per problem) and a
non-zero exit: 2 for configuration and usage, 1 for everything else. Anything
that is not a ``SyndicationError`` is a bug and keeps its traceback.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import sys
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from datetime import datetime, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from syndication import __version__, config, directory, logs
from syndication.core import Syndication
from syndication.errors import ConfigError, SyndicationError
from syndication.scheduler import next_run
from syndication.types import Article, PollResult

T = TypeVar("T")

app = typer.Typer(
    name="syndication",
    help="Pull a news portal's articles into a store; list sources and articles.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Manage the store's database schema.", no_args_is_help=True)
config_app = typer.Typer(help="Check the configuration file.", no_args_is_help=True)
feeds_app = typer.Typer(help="Build the published feeds (RSS, Atom, JSON Feed).", no_args_is_help=True)
subscribers_app = typer.Typer(
    help="Manage the subscriber directory (branches and their addresses).", no_args_is_help=True
)
digest_app = typer.Typer(help="Send, preview and report e-mail digests.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(feeds_app, name="feeds")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(digest_app, name="digest")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", "-f", metavar="table|json", help="table for people, json for tools.")
]


class LogFormat(StrEnum):
    auto = "auto"
    json = "json"
    text = "text"


class _State:
    config_path: Path | None = None


state = _State()


def _version(value: bool) -> None:
    if value:
        out.print(f"syndication {__version__}")
        raise typer.Exit


@app.callback()
def _main(
    config_path: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            metavar="FILE",
            help="Configuration file (default: $SYNDICATION_CONFIG, else config/syndication.toml).",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also log what happens, not only errors.")
    ] = False,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            metavar="auto|json|text",
            help="Log lines as JSON objects or text; auto: text on a terminal, else JSON.",
        ),
    ] = LogFormat.auto,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Pull a news portal's articles from feeds and pages into a durable store."""
    state.config_path = config_path
    logs.configure(level=logging.INFO if verbose else logging.ERROR, fmt=log_format.value)


def _settings() -> config.Settings:
    return config.load(state.config_path)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@contextmanager
def _errors() -> Iterator[None]:
    """Our errors to one line on stderr and an exit code; bugs keep their traceback."""
    try:
        yield
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(problem, markup=False, highlight=False)
        raise typer.Exit(2) from None
    except SyndicationError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None


def _table(title: str) -> Table:
    """A table that fits 80 columns: no outer border, a rule under the header."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )


def _local(when: datetime | None, tz: tzinfo) -> str:
    return when.astimezone(tz).strftime("%d/%m/%Y %H:%M") if when else "—"


@app.command()
def fetch(
    source: Annotated[
        list[str] | None,
        typer.Option("--source", "-s", metavar="ID", help="Poll only this source (repeatable)."),
    ] = None,
) -> None:
    """Poll sources once (all, or --source ID) and print what each one brought.

    Exit status 0 when at least one source succeeded (a 304 counts), 1 when all failed.
    """
    with _errors():
        settings = _settings()
        results = _run(_fetch(settings, source or None))
    tz = settings.site.tz
    table = _table("Polled sources")
    for column in ("source", "status", "new", "updated", "unchanged", "next poll"):
        table.add_column(column, justify="right" if column in ("new", "updated", "unchanged") else "left")
    for r in results:
        table.add_row(
            r.source_id,
            r.status.replace("_", " "),
            str(r.counts.new),
            str(r.counts.updated),
            str(r.counts.unchanged),
            _local(r.next_attempt, tz),
        )
    out.print(table)
    # Full messages below the table, one line each, rather than wrapped inside a cell.
    for r in results:
        if r.error:
            err.print(f"error: {r.source_id}: {r.error}", markup=False, highlight=False, soft_wrap=True)
        for warning in r.warnings:
            err.print(f"warning: {r.source_id}: {warning}", markup=False, highlight=False, soft_wrap=True)
    if not any(r.status != "error" for r in results):
        raise typer.Exit(1)


async def _fetch(settings: config.Settings, source_ids: list[str] | None) -> list[PollResult]:
    async with Syndication(settings) as syn:
        specs = syn.select_sources(source_ids)
        if not err.is_terminal:
            return await syn.poll(source_ids)
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("Polling sources", total=len(specs))
            return await syn.poll(source_ids, on_result=lambda _r: progress.advance(task))


@app.command()
def sources(
    format: FormatOption = Format.table,
) -> None:
    """List configured sources with last success, last error and next attempt."""
    with _errors():
        settings = _settings()
        reports = _run(_sources(settings))
    if format is Format.json:
        rows = [
            {
                "id": r.spec.id,
                "kind": r.spec.kind,
                "url": r.spec.url,
                "categories": list(r.spec.categories),
                "interval_seconds": int(r.spec.interval.total_seconds()),
                "articles": r.state.article_count if r.state else 0,
                "last_success": _iso(r.state.last_success if r.state else None),
                "last_attempt": _iso(r.state.last_attempt if r.state else None),
                "last_error": r.state.last_error if r.state else None,
                "error_count": r.state.error_count if r.state else 0,
                "next_attempt": _iso(r.state.next_attempt if r.state else None),
            }
            for r in reports
        ]
        out.print_json(json.dumps(rows, ensure_ascii=False))
        return
    tz = settings.site.tz
    _print_sources(reports, tz, f"Sources in {settings.path} (URLs: --format json)")


def _print_sources(reports: list[Any], tz: tzinfo, title: str) -> None:
    """The sources table with each last error below it in full (``sources`` and ``status``)."""
    table = _table(title)
    for column in ("id", "kind", "articles", "last poll", "last success", "next poll", "errors"):
        numeric = column in ("articles", "errors")
        table.add_column(column, no_wrap=True, justify="right" if numeric else "left")
    for r in reports:
        s = r.state
        table.add_row(
            r.spec.id,
            r.spec.kind,
            str(s.article_count if s else 0),
            _local(s.last_attempt if s else None, tz),
            _local(s.last_success if s else None, tz),
            _local(s.next_attempt if s else None, tz),
            str(s.error_count if s else 0),
        )
    out.print(table)
    for r in reports:
        if r.state and r.state.last_error:
            out.print(f"last error of {r.spec.id}: {r.state.last_error}", markup=False, highlight=False)


async def _sources(settings: config.Settings) -> list[Any]:
    async with Syndication(settings) as syn:
        return list(await syn.source_reports())


@app.command()
def articles(
    category: Annotated[
        str | None, typer.Option("--category", metavar="SLUG", help="Only this category.")
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(
            "--search",
            metavar="TEXT",
            help='Text to find, as a phrase; diacritics optional ("uy ban" finds "Ủy ban").',
        ),
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", metavar="ID", help="Only articles from this source.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", min=1, max=10000, help="At most this many.")
    ] = 20,
    format: FormatOption = Format.table,
) -> None:
    """List stored articles, newest first."""
    with _errors():
        settings = _settings()
        found = _run(_articles(settings, category=category, search=search, source_id=source, limit=limit))
    if format is Format.json:
        sys.stdout.write(json.dumps([article_json(a) for a in found], ensure_ascii=False, indent=2) + "\n")
        return
    tz = settings.site.tz
    table = _table(f"{len(found)} articles, newest first")
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("published", no_wrap=True)
    table.add_column("title", ratio=1)
    table.add_column("categories", no_wrap=True)
    for a in found:
        dup = f" (duplicate of {a.duplicate_of})" if a.duplicate_of else ""
        table.add_row(str(a.id), _local(a.published, tz), a.title + dup, ", ".join(a.categories))
    out.print(table)


async def _articles(settings: config.Settings, **kwargs: Any) -> list[Article]:
    async with Syndication(settings) as syn:
        return await syn.articles(**kwargs)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when else None


def article_json(a: Article) -> dict[str, Any]:
    """The stable JSON form of an article (``articles --format json``)."""
    return {
        "id": a.id,
        "guid": a.guid,
        "url": a.url,
        "title": a.title,
        "summary": a.summary,
        "content_html": a.content_html,
        "author": a.author,
        "categories": list(a.categories),
        "published": _iso(a.published),
        "updated": _iso(a.updated),
        "source": a.source_id,
    }


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database or bring its schema up to date (also done on every start)."""
    with _errors():
        settings = _settings()
        revision = _run(_upgrade(settings))
    out.print(f"{settings.storage.display_url} is at revision {revision}", markup=False, highlight=False)


async def _upgrade(settings: config.Settings) -> str | None:
    async with Syndication(settings) as syn:
        return await syn.upgrade()


@config_app.command("check")
def config_check() -> None:
    """Validate the configuration file and summarise it; exit 2 listing every problem."""
    with _errors():
        settings = _settings()
    out.print(
        f"{settings.path}: OK: {len(settings.categories)} categories, {len(settings.sources)} sources, "
        f"store {settings.storage.display_url}",
        markup=False,
        highlight=False,
    )


@app.command()
def run(
    host: Annotated[
        str | None, typer.Option("--host", metavar="ADDRESS", help="Listen here (default: server.host).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", metavar="PORT", help="Listen on this port (default: server.port).")
    ] = None,
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
    from syndication.process import Roles, run_service

    with _errors():
        settings = _settings()
        templates = _templates_dir()
        workers = settings.service.workers and not no_workers
        _service_logging()
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(
                run_service(
                    settings,
                    roles=Roles(web=True, scheduler=True, workers=workers),
                    templates=templates,
                    host=host or settings.server.host,
                    port=port or settings.server.port,
                    on_warning=lambda text: err.print(text, markup=False, highlight=False),
                )
            )


@app.command()
def worker(
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address for --port (default 127.0.0.1).")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port", metavar="PORT", help="Also serve /healthz and /metrics of this worker on PORT."
        ),
    ] = 0,
) -> None:
    """Poll due sources and send queued deliveries until stopped, sharing the work with
    every other worker on the same (PostgreSQL) store. No scheduler, no feeds: run one
    `syndication run --no-workers` beside any number of these."""
    from syndication.process import Roles, run_service

    with _errors():
        settings = _settings()
        _service_logging()
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(
                run_service(
                    settings,
                    roles=Roles(web=False, scheduler=False, workers=True),
                    templates=Path(),
                    host=host,
                    port=port,
                )
            )


def _service_logging() -> None:
    """A long-running process says what it does (INFO) unless told to be quieter."""
    logger = logging.getLogger("syndication")
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option("--host", metavar="ADDRESS", help="Listen here (default: server.host).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", metavar="PORT", help="Listen on this port (default: server.port).")
    ] = None,
) -> None:
    """Serve the feeds and the pages for people over HTTP until stopped (Ctrl-C).

    Feeds are built at start and rebuilt when articles change, also when another
    process (syndication fetch) changed them.
    """
    from syndication.process import Roles, run_service

    with _errors():
        settings = _settings()
        templates = _templates_dir()
        _service_logging()
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(
                run_service(
                    settings,
                    roles=Roles(web=True, scheduler=False, workers=False),
                    templates=templates,
                    host=host or settings.server.host,
                    port=port or settings.server.port,
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
    with the same bytes the server sends, for nginx or a CDN."""
    with _errors():
        settings = _settings()
        written = _run(_export(settings, out_dir))
    out.print(f"wrote {len(written)} files to {out_dir}", markup=False, highlight=False)


async def _export(settings: config.Settings, out: Path) -> list[Path]:
    async with Syndication(settings) as syn:
        service = await syn.feed_service()
        try:
            return await service.export(out)
        except OSError as exc:
            raise SyndicationError(f"cannot write to {out}: {exc.strerror or exc}") from exc


@app.command()
def status() -> None:
    """Show sources (last and next poll, last error), digests (next run, the last issue's
    delivered and failed counts) and subscribers by status."""
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
    if nodes:
        table = _table("Processes")
        for column in ("process", "role", "started", "last seen"):
            table.add_column(column, no_wrap=True)
        for node in nodes:
            table.add_row(node.owner, node.role, _local(node.started, tz), _local(node.heartbeat, tz))
        out.print(table)
    else:
        out.print("Processes: none running (start one with `syndication run`)", markup=False, highlight=False)


async def _status(settings: config.Settings) -> tuple[Any, Any, dict[str, int], Any]:
    async with Syndication(settings) as syn:
        reports = await syn.source_reports()
        digests = [(spec, await syn.latest_issue(spec.name)) for spec in settings.digests]
        return reports, digests, await syn.subscriber_counts(), await syn.nodes()


# --- subscribers -----------------------------------------------------------------------


class ListFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@subscribers_app.command("import")
def subscribers_import(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A .csv (or .yaml) directory file.")],
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the good rows even when some rows are bad.")
    ] = False,
) -> None:
    """Add or update subscribers from a directory file (upsert by address).

    Every row is checked first; every bad row is reported with its line number, and
    nothing is imported when any row is bad unless --skip-invalid. An address that
    unsubscribed or bounced is never re-activated.
    """
    with _errors():
        settings = _settings()
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise SyndicationError(f"cannot read {file}: {exc.strerror or exc}") from exc
        parse = directory.parse_yaml if file.suffix.lower() in (".yaml", ".yml") else directory.parse_csv
        parsed = parse(
            data,
            source=str(file),
            categories=[c.slug for c in settings.categories],
            digests=[d.name for d in settings.digests],
        )
        for problem in parsed.problems:
            err.print(str(problem), markup=False, highlight=False, soft_wrap=True)
        if parsed.problems and not skip_invalid:
            err.print(
                f"nothing imported: {len(parsed.problems)} problem(s); fix them or use --skip-invalid",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(2)
        counts = _run(_upsert(settings, parsed.rows))
    out.print(
        f"{file}: {counts.new} new, {counts.updated} updated, {counts.unchanged} unchanged, "
        f"{counts.kept} kept unsubscribed/bounced"
        + (f", {len(parsed.problems)} bad rows skipped" if parsed.problems else ""),
        markup=False,
        highlight=False,
    )


async def _upsert(settings: config.Settings, rows: Any) -> Any:
    async with Syndication(settings) as syn:
        return await syn.upsert_subscribers(rows)


@subscribers_app.command("list")
def subscribers_list(
    status: Annotated[
        str | None,
        typer.Option("--status", metavar="STATUS", help="pending, active, unsubscribed or bounced."),
    ] = None,
    digest: Annotated[
        str | None, typer.Option("--digest", metavar="NAME", help="Only subscribers of this digest.")
    ] = None,
    format: Annotated[
        ListFormat, typer.Option("--format", "-f", metavar="table|json|csv", help="Output format.")
    ] = ListFormat.table,
) -> None:
    """List subscribers by organisation, with their categories, digest and status."""
    with _errors():
        settings = _settings()
        found = _run(_list_subscribers(settings, status, digest))
    if format is ListFormat.csv:
        sys.stdout.buffer.write(directory.export_csv([_export_row(s) for s in found]))
        return
    if format is ListFormat.json:
        rows = [
            {
                "address": s.address,
                "name": s.display_name,
                "organisation": s.organisation,
                "categories": list(s.categories),
                "digest": s.digest,
                "status": s.status,
            }
            for s in found
        ]
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    table = _table(f"{len(found)} subscribers")
    table.add_column("organisation", ratio=1, min_width=12)
    table.add_column("address", no_wrap=True)
    table.add_column("name", ratio=1)
    table.add_column("categories", ratio=1, min_width=10, overflow="fold")
    table.add_column("digest", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for s in found:
        table.add_row(
            s.organisation or "—",
            s.address,
            s.display_name,
            ", ".join(s.categories) or "(tất cả)",
            s.digest,
            s.status,
        )
    out.print(table)


def _export_row(s: Any) -> Any:
    return directory.ExportRow(
        address=s.address,
        display_name=s.display_name,
        organisation=s.organisation,
        parent=None,
        categories=tuple(s.categories),
        digest=s.digest,
        status=s.status,
    )


async def _list_subscribers(settings: config.Settings, status: str | None, digest: str | None) -> list[Any]:
    async with Syndication(settings) as syn:
        return await syn.list_subscribers(status=status, digest=digest)


@subscribers_app.command("export")
def subscribers_export(
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", metavar="FILE", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write every subscriber as CSV (UTF-8 with BOM for Excel, safe against formula injection)."""
    with _errors():
        settings = _settings()
        found = _run(_list_subscribers(settings, None, None))
        data = directory.export_csv([_export_row(s) for s in found])
        if out_file is None:
            sys.stdout.buffer.write(data)
            return
        try:
            out_file.write_bytes(data)
        except OSError as exc:
            raise SyndicationError(f"cannot write {out_file}: {exc.strerror or exc}") from exc
    out.print(f"wrote {len(found)} subscribers to {out_file}", markup=False, highlight=False)


@subscribers_app.command("add")
def subscribers_add(
    address: Annotated[str, typer.Argument(metavar="ADDRESS", help="E-mail address.")],
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="Display name.")] = "",
    organisation: Annotated[
        str | None, typer.Option("--organisation", metavar="NAME", help='Branch, e.g. "Chi bộ Văn phòng".')
    ] = None,
    category: Annotated[
        list[str] | None,
        typer.Option("--category", metavar="SLUG", help="Follow this category (repeatable; none = all)."),
    ] = None,
    digest: Annotated[
        str | None,
        typer.Option("--digest", metavar="NAME", help="Digest to receive (default: the first configured)."),
    ] = None,
) -> None:
    """Add one subscriber (active at once: the publisher vouches for it), or update it."""
    with _errors():
        settings = _settings()
        row = directory.single_row(
            address=address,
            display_name=name,
            organisation=organisation,
            categories=category or [],
            digest=digest or (settings.digests[0].name if settings.digests else "daily"),
            known_categories=[c.slug for c in settings.categories],
            known_digests=[d.name for d in settings.digests],
        )
        counts = _run(_upsert(settings, [row]))
    state = "added" if counts.new else "kept unsubscribed/bounced" if counts.kept else "updated"
    out.print(f"{row.address}: {state}", markup=False, highlight=False)


@subscribers_app.command("remove")
def subscribers_remove(
    address: Annotated[str, typer.Argument(metavar="ADDRESS", help="E-mail address.")],
) -> None:
    """Remove a subscriber from the directory (past deliveries stay in the reports)."""
    with _errors():
        settings = _settings()
        removed = _run(_remove(settings, address.strip().lower()))
        if not removed:
            raise SyndicationError(f"no subscriber {address.strip().lower()}")
    out.print(f"removed {address.strip().lower()}", markup=False, highlight=False)


async def _remove(settings: config.Settings, address: str) -> bool:
    async with Syndication(settings) as syn:
        return await syn.remove_subscriber(address)


# --- digests --------------------------------------------------------------------------


@digest_app.command("send")
def digest_send(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The digest, as named in [[digests]].")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count and write one preview; send nothing.")
    ] = False,
    queue_only: Annotated[
        bool,
        typer.Option(
            "--queue-only",
            help="Write the messages to the outbox and stop; running workers send them.",
        ),
    ] = False,
) -> None:
    """Build the digest now and send it to every subscriber with something new.

    Sending resumes where it stopped: run it again after a crash and nothing is sent twice.
    """
    with _errors():
        settings = _settings()
        _run(_digest_send(settings, name, dry_run, queue_only))


async def _digest_send(settings: config.Settings, name: str, dry_run: bool, queue_only: bool = False) -> None:
    async with Syndication(settings) as syn:
        service = await syn.digest_service()
        plan = await service.plan(name, dry_run=dry_run)
        if dry_run:
            out.print(
                f"digest {name} (dry run): {plan.recipients} subscribers would receive it, "
                f"{plan.nothing_new} have nothing new",
                markup=False,
                highlight=False,
            )
            if plan.preview is not None:
                subscriber, content = plan.preview
                preview = Path("var") / f"preview-{name}.html"
                preview.parent.mkdir(parents=True, exist_ok=True)
                preview.write_text(service.preview_html(subscriber, content), encoding="utf-8")
                out.print(f"preview for {subscriber.address}: {preview}", markup=False, highlight=False)
            return
        assert plan.issue is not None
        if plan.resumed:
            out.print(f"digest {name}: continuing issue {plan.issue.id}", markup=False, highlight=False)
        if not plan.resumed and not plan.added:
            out.print(
                f"digest {name}: issue {plan.issue.id}, nothing to send "
                f"({plan.nothing_new} subscribers with nothing new)",
                markup=False,
                highlight=False,
            )
            return
        if plan.added:
            out.print(
                f"digest {name}: issue {plan.issue.id}, {plan.added} messages queued, "
                f"{plan.nothing_new} subscribers with nothing new",
                markup=False,
                highlight=False,
            )
        if queue_only:
            return
        if err.is_terminal:
            with Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as progress:
                task = progress.add_task("Sending", total=plan.recipients or None)
                summary = await service.send(plan.issue, on_progress=lambda n: progress.advance(task, n))
        else:
            summary = await service.send(plan.issue)
        counts = await syn.delivery_counts(plan.issue.id)
    out.print(
        f"issue {plan.issue.id}: sent now {summary.sent}, retrying {summary.retrying}, "
        f"failed {summary.failed}; in all: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        markup=False,
        highlight=False,
    )
    for address in summary.bounced:
        err.print(f"bounced: {address} (no more digests until re-added)", markup=False, highlight=False)


@digest_app.command("preview")
def digest_preview(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The digest.")],
    subscriber: Annotated[str, typer.Option("--subscriber", metavar="ADDRESS", help="Whose digest to show.")],
    out_file: Annotated[
        Path, typer.Option("--out", "-o", metavar="FILE.html", help="Where to write the HTML.")
    ],
) -> None:
    """Write the HTML that SUBSCRIBER would receive if the digest were sent now."""
    with _errors():
        settings = _settings()
        html, count = _run(_preview(settings, name, subscriber.strip().lower()))
        try:
            out_file.write_text(html, encoding="utf-8")
        except OSError as exc:
            raise SyndicationError(f"cannot write {out_file}: {exc.strerror or exc}") from exc
    out.print(f"wrote {out_file} ({count} articles)", markup=False, highlight=False)


async def _preview(settings: config.Settings, name: str, address: str) -> tuple[str, int]:
    async with Syndication(settings) as syn:
        service = await syn.digest_service()
        spec = service.spec(name)
        found = await syn.get_subscriber(address)
        if found is None:
            raise SyndicationError(f"no subscriber {address}")
        content = await service.content_for(spec, found, now=syn.clock())
        return service.preview_html(found, content), content.count


@digest_app.command("report")
def digest_report(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The digest.")],
    issue: Annotated[
        int | None, typer.Option("--issue", metavar="ID", help="This issue (default: the latest).")
    ] = None,
    format: Annotated[
        ListFormat, typer.Option("--format", "-f", metavar="table|csv", help="Output format.")
    ] = ListFormat.table,
) -> None:
    """Show, per branch, how many addresses were delivered, failed or pending for an issue."""
    with _errors():
        settings = _settings()
        found, rows = _run(_report(settings, name, issue))
    if format is ListFormat.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(["organisation", "delivered", "failed", "pending"])
        writer.writerows([directory.escape_formula(org), d, f, p] for org, d, f, p in rows)
        sys.stdout.buffer.write(("\ufeff" + buffer.getvalue()).encode("utf-8"))
        return
    tz = settings.site.tz
    table = _table(f"Digest {name}, issue {found.id} of {_local(found.scheduled_for, tz)}")
    for column in ("organisation", "delivered", "failed", "pending"):
        table.add_column(column, justify="left" if column == "organisation" else "right")
    for org, delivered, failed, pending in rows:
        table.add_row(org, str(delivered), str(failed), str(pending))
    out.print(table)


async def _report(settings: config.Settings, name: str, issue_id: int | None) -> tuple[Any, list[Any]]:
    async with Syndication(settings) as syn:
        return await syn.digest_report(name, issue_id)


def main() -> None:
    """Console-script entry point."""
    app()
