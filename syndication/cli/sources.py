"""``syndication fetch``, ``sources`` and ``articles``: poll the sources once and
look at what they brought. A thin shell over ``core``."""

from __future__ import annotations

import json
import sys
from datetime import datetime, tzinfo
from typing import Annotated, Any

import typer

from syndication import config
from syndication.cli.common import (
    Format,
    FormatOption,
    _errors,
    _local,
    _progress,
    _run,
    _settings,
    _table,
    err,
    out,
)
from syndication.core import Syndication
from syndication.types import Article, PollResult

app = typer.Typer()


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
        with _progress() as progress:
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
                "last_warning": r.state.last_warning if r.state else None,
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
        for warning in (r.state.last_warning or "").splitlines() if r.state else ():
            out.print(f"last warning of {r.spec.id}: {warning}", markup=False, highlight=False)


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
        str | None,
        typer.Option(
            "--source",
            metavar="ID",
            help="Only what this source carries (also articles first seen elsewhere, and its own "
            "copies of stories another source brought first).",
        ),
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
        "sources": list(a.sources),
        "duplicate_of": a.duplicate_of,
    }
