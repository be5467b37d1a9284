"""Functions for the parse pool's workers to run in tests: a bug, an error that does not
unpickle, a long sleep. Standard library only, so a worker imports little to run them."""

from __future__ import annotations

import os
import time
from pathlib import Path


class Unpicklable(Exception):
    """Pickles, but its constructor needs two arguments and ``args`` holds one."""

    def __init__(self, message: str, extra: str) -> None:
        super().__init__(message)
        self.extra = extra


def buggy(content: bytes, *, url: str) -> None:
    raise ValueError(f"a bug while reading {len(content)} bytes from {url}")


def unpicklable(content: bytes, *, url: str) -> None:
    raise Unpicklable("không gửi về được", "thêm")


def echo(content: bytes, *, url: str) -> tuple[bytes, str]:
    return content, url


def sleep(content: bytes, *, url: str) -> None:
    time.sleep(float(content))


def announce_then_sleep(content: bytes, *, url: str) -> None:
    """Write this worker's pid to the file named by ``content``, then sleep a minute."""
    Path(content.decode()).write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(60)
