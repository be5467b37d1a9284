"""``python -m syndication`` and the ``syndication`` command (the console script calls ``main``).

Light on purpose: a parse worker, forked from multiprocessing's fork server, first runs
the command's script again as ``__mp_main__``; whatever that script imports, every
worker imports too. Pointed at ``syndication.cli`` directly, each worker loaded all of
the CLI and of core (the store, SQLAlchemy, the mail templates: +48 MiB of memory per
worker). So the CLI is imported only when the command actually runs.
"""


def main() -> None:
    """Run the command line (``syndication.cli``)."""
    from syndication.cli import main as run

    run()


if __name__ == "__main__":
    main()
