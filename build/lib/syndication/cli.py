"""The ``syndication`` command: a thin shell over ``core``.

Our errors become one line on stderr (a bad config: one line per problem) and a
non-zero exit: 2 for configuration and usage, 1 for everything else. Anything
that is not a ``SyndicationError`` is a bug and keeps its traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
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

from syndication import __version__, config
from syndication.core import Syndication
from syndication.errors import ConfigError, SyndicationError
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
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(feeds_app, name="feeds")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", "-f", metavar="table|json", help="table for people, json for tools.")
]


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
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Pull a news portal's articles from feeds and pages into a durable store."""
    state.config_path = config_path
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


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
    table = _table(f"Sources in {settings.path} (URLs: --format json)")
    for column in ("id", "kind", "articles", "last success", "next attempt", "errors"):
        numeric = column in ("articles", "errors")
        table.add_column(column, no_wrap=True, justify="right" if numeric else "left")
    for r in reports:
        s = r.state
        table.add_row(
            r.spec.id,
            r.spec.kind,
            str(s.article_count if s else 0),
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
    with _errors():
        settings = _settings()
        templates = _templates_dir(settings)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(
                _serve(settings, templates, host or settings.server.host, port or settings.server.port)
            )


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        return None
    return uvloop.new_event_loop


def _templates_dir(settings: config.Settings) -> Path:
    """``templates/`` beside the configuration folder, else the copy shipped in the package."""
    beside = settings.path.parent.parent / "templates"
    if (beside / "index.html").is_file():
        return beside
    shipped = Path(__file__).parent / "web" / "templates"
    if (shipped / "index.html").is_file():
        return shipped
    raise SyndicationError(f"no templates found (looked in {beside} and {shipped})")


async def _serve(settings: config.Settings, templates: Path, host: str, port: int) -> None:
    import uvicorn

    from syndication.web.app import create_app

    async with Syndication(settings) as syn:
        service = await syn.feed_service()
        app = create_app(
            service,
            templates_dir=templates,
            cache_max_age=int(settings.feeds.cache_max_age.total_seconds()),
            timezone=settings.site.timezone,
        )
        server = uvicorn.Server(
            uvicorn.Config(
                app, host=host, port=port, log_level="warning", lifespan="off", server_header=False
            )
        )
        err.print(f"Serving feeds at http://{host}:{port}/ (public address {settings.site.base_url})")
        watcher = asyncio.create_task(service.watch())
        try:
            await server.serve()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


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


def main() -> None:
    """Console-script entry point."""
    app()
