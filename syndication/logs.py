"""Where log records go and how they look: JSON lines for machines, text for people.

``configure`` is called once by the command line, before any work; everything
else only logs (``logging.getLogger(__name__)``), passing fields that identify what
it is about as ``extra=``. uvicorn's loggers go through the same handler: the
server is told not to install handlers of its own (``web.server.config``), so its
records propagate to the root logger like everyone else's.

Formats:

- ``json``: one object per line, UTF-8 (Vietnamese as it is, not ``\\u`` escapes), with
  ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, ``exception`` when a
  traceback was logged, and every ``extra=`` field;
- ``text``: ``HH:MM:SS LEVEL logger: message`` in local time, ``extra=`` fields
  appended as ``key=value``, for a person at a terminal;
- ``auto``: ``text`` when the stream is a terminal, else ``json`` (a service manager,
  a container runtime or a file is reading it).

Must not: decide what is logged, or read anything but the log records.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

__all__ = ["FORMATS", "JsonFormatter", "TextFormatter", "configure"]

LogFormat = Literal["auto", "json", "text"]
FORMATS: tuple[LogFormat, ...] = ("auto", "json", "text")

# The attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
_FIELDS = ("time", "level", "logger", "message", "exception", "stack")


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a log call passed with ``extra=``, in the order given."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON; see the module docstring."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            # Cached on the record, as logging.Formatter does, for other handlers.
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in extra_fields(record).items():
            # An extra field named like one of ours must not hide the record's own.
            entry[f"extra_{key}" if key in _FIELDS else key] = value
        # default=str: an extra value of any type is written rather than lost with the record.
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """A record as a line for people: time, level, logger, message, then ``key=value`` extras."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = extra_fields(record)
        if not extras:
            return text
        first, newline, rest = text.partition("\n")  # the fields stay on the message's line
        fields = " ".join(f"{key}={value}" for key, value in extras.items())
        return f"{first} {fields}{newline}{rest}"


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``configure`` installs; its class tells it apart from anyone else's."""


def configure(*, level: int, fmt: LogFormat | str = "auto", stream: TextIO | None = None) -> logging.Handler:
    """Send every log record of ``level`` and above to ``stream`` (default: stderr) in ``fmt``.

    Replaces the handler an earlier call installed (handlers others added, such as a
    test runner's, stay). Returns the handler installed.

    Raises:
        ValueError: ``fmt`` is not one of ``FORMATS``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r} (one of {', '.join(FORMATS)})")
    out = sys.stderr if stream is None else stream
    if fmt == "auto":
        fmt = "text" if _is_terminal(out) else "json"
    if fmt == "json":
        _ensure_utf8(out)
    handler = _Handler(out)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _ensure_utf8(stream: TextIO) -> None:
    """JSON lines are UTF-8: a stream set up for another encoding (``LANG=C``, a Windows
    console code page) would turn Vietnamese into ``\\x..`` escapes or fail."""
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    reconfigure = getattr(stream, "reconfigure", None)
    if encoding != "utf8" and reconfigure is not None:
        reconfigure(encoding="utf-8")
