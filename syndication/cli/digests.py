"""``syndication digest``: send a digest now, preview one subscriber's, report an issue.
A thin shell over ``core``'s digest service."""

from __future__ import annotations

import csv
import io
import sys
from datetime import tzinfo
from pathlib import Path
from typing import Annotated, Any

import typer

from syndication import addresses, config, directory
from syndication.cli.common import (
    ListFormat,
    _errors,
    _local,
    _progress,
    _run,
    _settings,
    _stop_on_signals,
    _table,
    err,
    out,
)
from syndication.core import Syndication
from syndication.core.outbox import HeldClaim
from syndication.errors import SyndicationError

TOTAL = "(tổng cộng)"
"""The last row of ``digest report``'s table: every branch together."""

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
    catch_up: Annotated[
        bool,
        typer.Option(
            "--catch-up",
            help="Do not bound a subscriber's first digest, or a new source's articles, by the "
            "digest's period: they carry everything seen in the window (up to max_items), as a "
            "first issue after installing may.",
        ),
    ] = False,
    take_over: Annotated[
        bool,
        typer.Option(
            "--take-over",
            help="Also send the messages claimed by a sender that cannot be seen (no heartbeat), "
            "without waiting for its claims to expire. Only when you know it stopped.",
        ),
    ] = False,
) -> None:
    """Build the digest now and send it to every subscriber with something new.

    Sending resumes where it stopped: run it again after a crash and nothing is sent twice;
    what a crashed sender had claimed is taken over at once when it is known to be gone.
    Ctrl-C stops cleanly: messages in flight finish and the rest go back to the outbox.
    """
    with _errors():
        settings = _settings()
        stopped = _run(_digest_send(settings, name, dry_run, queue_only, take_over, catch_up))
    if stopped:
        raise typer.Exit(130)  # as a shell reports a command that Ctrl-C stopped


def _say(text: str, *, error: bool = False) -> None:
    (err if error else out).print(text, markup=False, highlight=False)


async def _digest_send(
    settings: config.Settings,
    name: str,
    dry_run: bool,
    queue_only: bool = False,
    take_over: bool = False,
    catch_up: bool = False,
) -> bool:
    """Plan and send; True when a signal stopped the sending part-way."""
    async with Syndication(settings) as syn:
        service = await syn.digest_service()
        plan = await service.plan(name, dry_run=dry_run, catch_up=catch_up)
        if dry_run:
            _say(
                f"digest {name} (dry run): {plan.recipients} subscribers would receive it, "
                f"{plan.nothing_new} have nothing new"
            )
            if plan.preview is not None:
                subscriber, content = plan.preview
                preview = Path("var") / f"preview-{name}.html"
                preview.parent.mkdir(parents=True, exist_ok=True)
                preview.write_text(service.preview_html(subscriber, content), encoding="utf-8")
                _say(f"preview for {subscriber.address}: {preview}")
            return False
        assert plan.issue is not None
        if plan.resumed:
            _say(f"digest {name}: continuing issue {plan.issue.id}")
        if not plan.resumed and not plan.added:
            _say(
                f"digest {name}: issue {plan.issue.id}, nothing to send "
                f"({plan.nothing_new} subscribers with nothing new)"
            )
            return False
        if plan.added:
            _say(
                f"digest {name}: issue {plan.issue.id}, {plan.added} messages queued, "
                f"{plan.nothing_new} subscribers with nothing new"
            )
        if queue_only:
            return False
        # This process says it is alive while it holds claims: were it killed, the next
        # run (or a worker) sees it is gone and takes its claims over at once.
        async with syn.alive("send"), _stop_on_signals("no new message starts") as stop:
            if err.is_terminal:
                with _progress() as progress:
                    task = progress.add_task("Sending", total=plan.recipients or None)
                    summary = await service.send(
                        plan.issue,
                        on_progress=lambda n: progress.advance(task, n),
                        stop=stop,
                        take_over_unknown=take_over,
                    )
            else:
                summary = await service.send(plan.issue, stop=stop, take_over_unknown=take_over)
            held = await service.held_claims(plan.issue)
        counts = await syn.delivery_counts(plan.issue.id)
    for owner, count in summary.taken_over:
        _say(f"took over {count} messages claimed by {owner}, which is no longer running")
    _say(
        f"issue {plan.issue.id}: sent now {summary.sent}, retrying {summary.retrying}, "
        f"failed {summary.failed}; in all: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )
    for address, reason in summary.refused:
        _say(f"not sent to {addresses.show(address)}: {reason}", error=True)
    for address in summary.bounced:
        _say(f"bounced: {address} (no more digests until re-added)", error=True)
    if stop.is_set():
        _say(
            f"stopped: {summary.released} messages went back to the outbox; "
            f"`syndication digest send {name}` sends them",
            error=True,
        )
    for claim in held:
        _say(_held_hint(name, claim, settings.site.tz), error=True)
    return stop.is_set()


def _held_hint(name: str, claim: HeldClaim, tz: tzinfo) -> str:
    """What to do about messages another sender holds."""
    until = f"{_local(claim.until, tz)} ({tz})"
    if claim.state == "alive":
        return (
            f"{claim.count} messages are being sent by {claim.owner}, another sender that is running "
            f"(its claims last until {until} while it works)"
        )
    return (
        f"{claim.count} messages are claimed by {claim.owner}, a sender that cannot be seen (no "
        f"heartbeat: an older version, or one stopped on another machine). If it still runs, it sends "
        f"them. If it stopped, its claims expire at {until}: run `syndication digest send {name}` "
        f"again then, or now with --take-over."
    )


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
    """Show, per branch, how many addresses were delivered, failed, pending or superseded
    for an issue (superseded: replaced by a later issue, which carries the same articles).
    """
    with _errors():
        settings = _settings()
        found, rows = _run(_report(settings, name, issue))
    # Superseded comes last, so that the columns of scripts written before it stay put.
    columns = ("organisation", "delivered", "failed", "pending", "superseded")
    counts = [
        (org, delivered, failed, pending, superseded) for org, delivered, failed, superseded, pending in rows
    ]
    if format is ListFormat.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(columns)
        writer.writerows([directory.escape_formula(org), *numbers] for org, *numbers in counts)
        sys.stdout.buffer.write(("\ufeff" + buffer.getvalue()).encode("utf-8"))
        return
    tz = settings.site.tz
    table = _table(f"Digest {name}, issue {found.id} of {_local(found.scheduled_for, tz)}")
    for column in columns:
        table.add_column(column, justify="left" if column == "organisation" else "right")
    for org, *numbers in counts:
        table.add_row(org, *map(str, numbers))
    if len(counts) > 1:
        table.add_section()
        table.add_row(TOTAL, *(str(sum(column)) for column in list(zip(*counts, strict=True))[1:]))
    out.print(table)


async def _report(settings: config.Settings, name: str, issue_id: int | None) -> tuple[Any, list[Any]]:
    async with Syndication(settings) as syn:
        return await syn.digest_report(name, issue_id)
