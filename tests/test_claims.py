"""Whether the sender that holds delivery claims is alive, gone or cannot be told
(``core.service.claimer_state``): pure, with the process table a function."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from syndication.core.service import claimer_state, pid_exists
from syndication.types import NodeInfo

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
SILENCE = timedelta(minutes=1)


def node(owner: str, seen: timedelta) -> NodeInfo:
    return NodeInfo(owner=owner, role="send", started=NOW - timedelta(hours=1), heartbeat=NOW - seen)


def state(owner: str, seen: timedelta | None, *, running: set[int]) -> str:
    return claimer_state(
        owner,
        None if seen is None else node(owner, seen),
        now=NOW,
        silence=SILENCE,
        host="may-nay",
        pid=100,
        pid_exists=lambda pid: pid in running,
    )


@pytest.mark.parametrize(
    ("owner", "seen", "running", "expected"),
    [
        # On this host the process table tells, whatever the heartbeat says.
        ("may-nay:200:ab12", timedelta(seconds=1), set(), "gone"),
        ("may-nay:200:ab12", None, set(), "gone"),
        ("may-nay:200:ab12", timedelta(seconds=1), {200}, "alive"),
        ("may-nay:100:ab12", None, set(), "alive"),  # this very process
        # A pid that exists but has fallen silent was reused, or is stuck: gone.
        ("may-nay:200:ab12", timedelta(minutes=5), {200}, "gone"),
        # Elsewhere only the heartbeat tells.
        ("may-khac:200:ab12", timedelta(seconds=30), set(), "alive"),
        ("may-khac:200:ab12", timedelta(minutes=2), set(), "gone"),
        ("may-khac:200:ab12", None, set(), "unknown"),
        ("no-pid-at-all", None, set(), "unknown"),
        ("may-nay:not-a-pid", None, set(), "unknown"),
    ],
)
def test_claimer_state(owner: str, seen: timedelta | None, running: set[int], expected: str) -> None:
    assert state(owner, seen, running=running) == expected


def test_pid_exists_on_this_host() -> None:
    assert pid_exists(os.getpid())
    assert not pid_exists(2**22 + 12345)  # above Linux's pid_max
