"""``syndication subscribers``: import, list, export, add and remove subscribers.
Parsing and writing directory files is ``directory``'s; this module only reads and
writes the files and prints."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from syndication import config, directory
from syndication.cli.common import ListFormat, _errors, _local, _run, _settings, _table, err, out
from syndication.core import Syndication
from syndication.errors import SyndicationError
from syndication.store import SubscriberCounts

subscribers_app = typer.Typer(
    help="Manage the subscriber directory (branches and their addresses).", no_args_is_help=True
)


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
    unsubscribed or bounced is never re-activated, and the categories and digest a
    person chose on the preferences page are kept: both are reported.
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
    _say(
        f"{file}: {counts.new} new, {counts.updated} updated, {counts.unchanged} unchanged"
        + (f", {len(parsed.problems)} bad rows skipped" if parsed.problems else "")
    )
    _report_kept(counts, settings)


def _say(line: str) -> None:
    out.print(line, markup=False, highlight=False, soft_wrap=True)


def _report_kept(counts: SubscriberCounts, settings: config.Settings) -> None:
    """What the import left as it was against the file: opt-outs, bounces, people's choices."""
    if counts.kept_unsubscribed:
        _say(f"kept unsubscribed: {counts.kept_unsubscribed} (listed in the directory; they opted out)")
    if counts.kept_bounced:
        _say(f"kept bounced: {counts.kept_bounced} (listed in the directory; their mailbox refuses mail)")
    if not counts.conflicts:
        return
    people = len({conflict.address for conflict in counts.conflicts})
    fields = len(counts.conflicts)
    _say(
        f"kept what {people} {'person' if people == 1 else 'people'} chose on the preferences page "
        f"({fields} field{'' if fields == 1 else 's'}):"
    )
    zone = settings.site.tz
    for c in counts.conflicts:
        _say(
            f"  {c.address}: {c.field}: the directory says {_shown(c.field, c.directory)}, "
            f"the person chose {_shown(c.field, c.chosen)} on {_local(c.chosen_at, zone)}"
        )


def _shown(field: str, value: str) -> str:
    """A value as the directory file writes it: categories separated by ";", none = all."""
    if field == "categories":
        return f'"{";".join(value.split())}"' if value else "all categories"
    return f'"{value}"'


async def _upsert(
    settings: config.Settings, rows: Any, event: Literal["import", "add"] = "import"
) -> SubscriberCounts:
    async with Syndication(settings) as syn:
        return await syn.upsert_subscribers(rows, event=event)


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
    """Add one subscriber (active at once: the publisher vouches for it), or update it.

    An address that unsubscribed or bounced keeps its status, and the categories and
    digest a person chose on the preferences page are kept: both are reported.
    """
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
        counts = _run(_upsert(settings, [row], "add"))
    if counts.new:
        state = "added"
    elif counts.kept_unsubscribed:
        state = "kept unsubscribed (they opted out; only they can subscribe again)"
    elif counts.kept_bounced:
        state = "kept bounced (their mailbox refuses mail)"
    else:
        state = "updated" if counts.updated else "unchanged"
    _say(f"{row.address}: {state}")
    if counts.conflicts:
        _report_kept(SubscriberCounts(conflicts=counts.conflicts), settings)


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
