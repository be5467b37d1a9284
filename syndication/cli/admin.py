"""``syndication db upgrade`` and ``config check``: the schema and the configuration file."""

from __future__ import annotations

import typer

from syndication import config
from syndication.cli.common import _errors, _run, _settings, out
from syndication.core import Syndication
from syndication.store import display_url

db_app = typer.Typer(help="Manage the store's database schema.", no_args_is_help=True)
config_app = typer.Typer(help="Check the configuration file.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database or bring its schema up to date (also done on every start)."""
    with _errors():
        settings = _settings()
        revision = _run(_upgrade(settings))
    out.print(f"{display_url(settings.storage.url)} is at revision {revision}", markup=False, highlight=False)


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
        f"store {display_url(settings.storage.url)}",
        markup=False,
        highlight=False,
    )
