"""What every command of the ``syndication`` command shares: the consoles, the
``--config`` the callback saw, output formats, and the mapping of our errors to exit codes.

Our errors become one line on stderr (a bad config: one line per problem) and a
non-zero exit: 2 for configuration and usage, 1 for everything else. Anything
that is not a ``SyndicationError`` is a bug and keeps its traceback.

No commands here, and no imports of the other ``cli`` modules (they import this one).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from syndication import config
from syndication.errors import ConfigError, SyndicationError

T = TypeVar("T")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", "-f", metavar="table|json", help="table for people, json for tools.")
]


class ListFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class _State:
    config_path: Path | None = None


state = _State()


def _settings() -> config.Settings:
    return config.load(state.config_path)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@asynccontextmanager
async def _stop_on_signals(what: str) -> AsyncIterator[asyncio.Event]:
    """An event set by the first Ctrl-C (SIGINT) or SIGTERM, for a command that can stop
    cleanly (``what`` says how, on stderr); a second signal cancels the command at once."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set():
            err.print("stopping now", markup=False, highlight=False)
            if task is not None:
                task.cancel()
            return
        stop.set()
        err.print(f"stopping: {what} (press Ctrl-C again to stop at once)", markup=False, highlight=False)

    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, on_signal)
    try:
        yield stop
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


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


def _progress() -> Progress:
    """A progress bar on stderr (for a terminal), gone when done."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
