"""The ``syndication`` command: a thin shell over ``core``.

This module is the Typer app and its global options. The commands live by domain:
``sources`` (fetch, sources, articles), ``service`` (run, worker, serve, status,
feeds build), ``subscribers``, ``digests`` and ``admin`` (db upgrade, config check);
what they share (consoles, formats, error handling) is in ``common``.

Our errors become one line on stderr (a bad config: one line per problem) and a
non-zero exit: 2 for configuration and usage, 1 for everything else. Anything
that is not a ``SyndicationError`` is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from syndication import __version__, logs
from syndication.cli import admin, digests, service, sources, subscribers
from syndication.cli.common import out, state

app = typer.Typer(
    name="syndication",
    help=(
        "Carry a news portal's articles to the people and systems who need them: pull them "
        "from feeds and pages, publish RSS, Atom and JSON Feed, and send e-mail digests. "
        "Start with `syndication run`."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
# The top-level commands, in the order `syndication --help` lists them, then the groups.
app.add_typer(service.app)  # run, worker, serve, status first: the service is the main job
app.add_typer(sources.app)
app.add_typer(admin.db_app, name="db")
app.add_typer(admin.config_app, name="config")
app.add_typer(service.feeds_app, name="feeds")
app.add_typer(subscribers.subscribers_app, name="subscribers")
app.add_typer(digests.digest_app, name="digest")


class LogFormat(StrEnum):
    auto = "auto"
    json = "json"
    text = "text"


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
    """Carry a news portal's articles to the people and systems who need them."""
    state.config_path = config_path
    logs.configure(level=logging.INFO if verbose else logging.ERROR, fmt=log_format.value)


def main() -> None:
    """Console-script entry point."""
    app()
