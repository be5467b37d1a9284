"""``python -m syndication``: the same as the ``syndication`` command."""

from syndication.cli import main

if __name__ == "__main__":
    main()
