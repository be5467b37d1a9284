"""Reading single values of a configuration: durations, sizes, retention periods, cron
expressions, URLs and paths, and ``_Checker``, which reads keys of a table and collects
every problem (file, key, what is wrong) instead of stopping at the first.

Each parser returns the value or raises ``ValueError`` with a message for people.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from syndication.ingest.netguard import host_problem

T = TypeVar("T")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost``, 127.0.0.0/8 or ::1 (also as an
    IPv4-mapped address or in brackets). Other names are not resolved: they could change."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


# --- small value parsers: each returns the value or raises ValueError with a message ---

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")
_DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: object) -> timedelta:
    """``"15m"``, ``"1h30m"``, ``"45s"``, ``"2d"`` to a timedelta."""
    if not isinstance(value, str):
        raise ValueError(f'expected a duration such as "15m" or "1h30m", got {value!r}')
    text = value.strip().lower().replace(" ", "")
    pos, seconds = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f'expected a duration such as "15m" or "1h30m", got {value!r}')
    if seconds <= 0:
        raise ValueError(f"must be longer than zero, got {value!r}")
    return timedelta(seconds=seconds)


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?$")
_SIZE_UNITS = {
    None: 1,
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_size(value: object) -> int:
    """``"20MB"``, ``"512KiB"`` or a whole number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(value.strip().lower()) if isinstance(value, str) else None
    if not match:
        raise ValueError(f'expected a size such as "20MB" or a number of bytes, got {value!r}')
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    if size <= 0:
        raise ValueError(f"must be larger than zero, got {value!r}")
    return size


class _Checker:
    """Collects problems while reading one table; every problem names file and key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path}: {key}: {message}")

    def table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key.rsplit(".", 1)[-1], {})
        if not isinstance(value, Mapping):
            self.problem(key, f"expected a table ([{key}]), got {type(value).__name__}")
            return {}
        return value

    def tables(self, items: object, key: str, allowed: set[str]) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """The tables of an array of tables (``[[key]]``) with their key prefix
        (``key[3].``), each checked for unknown keys; reports what is not a table."""
        if not isinstance(items, list):
            self.problem(key, f"expected an array of tables ([[{key}]])")
            return
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                self.problem(f"{key}[{i}]", "expected a table")
                continue
            prefix = f"{key}[{i}]."
            self.unknown(item, prefix, allowed)
            yield prefix, item

    def unknown(self, data: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
        for name in data:
            if name not in allowed:
                close = difflib.get_close_matches(name, sorted(allowed), n=1)
                hint = (
                    f'; did you mean "{close[0]}"?'
                    if close
                    else f"; known keys: {', '.join(sorted(allowed))}"
                )
                self.problem(f"{prefix}{name}", f"unknown key{hint}")

    def get(
        self,
        data: Mapping[str, Any],
        prefix: str,
        name: str,
        kind: type[T] | tuple[type, ...],
        default: T | None = None,
        *,
        required: bool = False,
    ) -> T | None:
        key = f"{prefix}{name}"
        if name not in data:
            if required:
                self.problem(key, "is required")
            return default
        value = data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = not (isinstance(value, bool) and bool not in kinds) and isinstance(value, kinds)
        if not ok:
            want = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            self.problem(key, f"expected {want}, got {_describe(value)}")
            return default
        return value  # type: ignore[no-any-return]

    def convert(
        self, data: Mapping[str, Any], prefix: str, name: str, parse: Callable[[object], T], default: T
    ) -> T:
        if name not in data:
            return default
        try:
            return parse(data[name])
        except ValueError as exc:
            self.problem(f"{prefix}{name}", str(exc))
            return default


_TYPE_NAMES = {
    str: "a string",
    int: "a whole number",
    bool: "true or false",
    list: "a list",
    float: "a number",
}


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return f'"{value}" (a string)'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return f"{value!r} ({type(value).__name__})"


_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def resolve_path(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _source_url(value: str, base: Path) -> str:
    """Check a source URL and make a relative ``file:`` URL absolute against ``base``."""
    parts = urlsplit(value)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise ValueError(f'"{value}" has no host name')
        if problem := host_problem(parts.hostname):
            raise ValueError(problem)
        return value
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f'"{value}": file: URLs must not name a host')
        raw = value[len("file:") :]
        if raw.startswith("//"):
            raw = raw[2:]
            raw = raw[raw.index("/") :] if "/" in raw else "/"
        return resolve_path(raw, base).as_uri()
    raise ValueError(f'expected an http://, https:// or file: URL, got "{value}"')


def _storage_url(value: str, base: Path) -> str:
    """Resolve a relative SQLite path against ``base``; other URLs pass unchanged."""
    if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
        rest = value[len("sqlite:///") :]
        if rest and not rest.startswith(":memory:"):
            path, _, query = rest.partition("?")
            url = "sqlite:///" + str(resolve_path(path, base))
            return f"{url}?{query}" if query else url
    # The URL may hold a password: messages quote no more of it than its scheme.
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
        scheme = value.partition(":")[0] if re.match(r"^[a-z][a-z0-9+]{0,30}:", value) else ""
        given = f'a URL beginning "{scheme}:"' if scheme else "something else"
        raise ValueError(f"expected a sqlite:/// or postgresql+psycopg:// URL, got {given}")
    if value.startswith("postgresql") and value.partition("?")[0].count("@") > 1:
        raise ValueError('the user part of the URL has an "@" in it: write it as %40')
    return value


def cron_problem(expression: str) -> str | None:
    """Why a 5-field cron expression is invalid, or ``None``."""
    fields = expression.split()
    if len(fields) != 5:
        return (
            f'expected 5 cron fields (minute hour day month weekday) such as "0 7 * * *", got "{expression}"'
        )
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(expression)
    except ValueError as exc:
        return f'invalid cron expression "{expression}": {exc}'
    return None


def parse_keep(value: object) -> timedelta | None:
    """A retention period: a duration, or ``"forever"`` (also ``0``) to keep everything."""
    # Not ``false``: a boolean equals 0 in Python, but "keep = false" says nothing clear.
    if (value == 0 and not isinstance(value, bool)) or (
        isinstance(value, str) and value.strip().lower() in ("forever", "0")
    ):
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f'expected a duration such as "365d", or "forever", got {value!r}') from None
