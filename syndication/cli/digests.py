"""``syndication digest``: send a digest now, preview one subscriber's, report an issue.
A thin shell over ``core``'s digest service."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from syndication import config, directory
from syndication.cli.common import ListFormat, _errors, _local, _progress, _run, _settings, _table, err, out
from syndication.core import Syndication
from syndication.errors import SyndicationError

digest_app = typer.Typer(help="Send, preview and report e-mail digests.", no_args_is_help=True)


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
            with _progress() as progress:
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
