"""The parse pool: documents parsed in worker processes, each under a deadline and a memory cap.

Parsing is CPU-bound and runs on hostile input, so it runs in processes that can be
killed. ``ParsePool`` keeps up to ``workers`` of them, forked from a forkserver that has
already imported the parsers (starting one is cheap and never forks our threads; they
share the parsers' pages). Each worker runs ``pipeline.serve`` and has a pipe of its own.

What one document can cost is bounded, and only that document pays for it:

* time: a worker that has not answered within ``timeout`` seconds is killed and the
  document fails with "parsing took more than 30 s";
* memory: a worker's address space is capped (``RLIMIT_AS``, set by the worker itself);
  a parser that needs more fails with "the parser ran out of memory (limit 1 GiB)" and
  the worker is replaced;
* death: a worker that dies (a crash in a C or Rust parser, the OOM killer, ``kill -9``)
  fails its document with "the parse worker died (signal 9, SIGKILL)".

In each case a new worker takes the place of the old one when the next document
comes, and every other document (in flight or later) is parsed as usual.

Why not ``concurrent.futures.ProcessPoolExecutor``: one dead worker fails every
pending future and leaves the pool broken for good, and it can neither time out nor
kill one task. Why not pebble (made for this: per-task timeouts, replacement of dead
workers): its workers share one pair of pipes guarded by cross-process locks, so a
worker killed at the wrong moment (holding the lock, or half-way through writing its
result, which is when the OOM killer strikes) leaves the lock held or the stream
corrupt; tried with pebble 5.2.3, killing workers while they worked broke the pool
("BrokenProcessPool: All workers expired") and every later task failed with
"Unexpected error within the Pool". Here each worker has its own pipe, so a worker
that dies at any moment takes down nothing but its own pipe.

How: each call runs in one of ``workers`` threads; a thread owns at most one worker
process, sends it the pickled call, waits for its receipt (a worker that died before
taking the document, while it waited, is replaced and the document handed to the new
one) and then for the reply, at most ``timeout`` seconds. The event loop only awaits
the thread's future.

Must not: be imported by the workers (they run ``pipeline.serve``: importing core would
make every worker load all of core), or read the wall clock (waits are timeouts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from syndication.errors import ParseError, SyndicationError
from syndication.ingest import pipeline
from syndication.text import size_text

__all__ = ["ParsePool", "make_parse_pool"]

log = logging.getLogger(__name__)

R = TypeVar("R")

STOP_WAIT = 5.0
"""Seconds a killed worker may take to be reaped."""


def make_parse_pool(workers: int, *, timeout: float, memory_limit: int | None) -> ParsePool | None:
    """The parse pool for ``fetch.parse_workers`` (0: one worker per CPU), or ``None`` to
    parse in a thread of this process (``parse_workers = 1``: no time or memory limit
    applies then, since a thread can be neither killed nor capped)."""
    if workers == 1:
        return None
    return ParsePool(workers=workers or os.cpu_count() or 1, timeout=timeout, memory_limit=memory_limit)


class ParsePool:
    """Worker processes that run ``pipeline`` functions, each call under ``timeout`` seconds
    and each worker under ``memory_limit`` bytes of address space (``None``: no cap).

    Workers start on first use; ``close`` stops them all.
    """

    def __init__(self, *, workers: int, timeout: float, memory_limit: int | None) -> None:
        self.workers = workers
        self.timeout = timeout
        self.memory_limit = memory_limit
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="parse")
        self._own = threading.local()
        """The worker of the current thread (``.worker``)."""
        self._lock = threading.Lock()
        self._live: set[_Worker] = set()
        self._closed = False
        self._context = multiprocessing.get_context("forkserver")
        # The fork server imports the worker's module and the parsers once (this only
        # matters before it starts); workers forked from it share those pages.
        with contextlib.suppress(RuntimeError, ValueError):
            self._context.set_forkserver_preload([pipeline.__name__, *pipeline.PARSER_MODULES])

    async def parse(self, fn: Callable[..., R], content: bytes, /, *, url: str, **kwargs: Any) -> R:
        """``fn(content, url=url, **kwargs)`` in a worker process.

        Raises:
            ParseError: what ``fn`` raised, or it took too long, ran out of memory or its
                worker died (the message says which; ``url`` is the error's URL).
            Exception: a bug in ``fn``, with the worker's traceback as its cause.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._call, fn, content, url, kwargs)

    def close(self) -> None:
        """Stop every worker (what they were parsing is abandoned) and the threads."""
        with self._lock:
            self._closed = True
            workers = list(self._live)
        for worker in workers:
            worker.kill()
        self._threads.shutdown(wait=True, cancel_futures=True)
        for worker in workers:
            worker.close()

    # --- in a pool thread ------------------------------------------------------------

    def _call(self, fn: Callable[..., R], content: bytes, url: str, kwargs: dict[str, Any]) -> R:
        # The poll that gets the ParseError logs it with its source: no log line here.
        request = pickle.dumps((fn, (content,), {"url": url, **kwargs}), protocol=pickle.HIGHEST_PROTOCOL)
        worker = self._hand_over(request, url)
        try:
            reply = worker.receive(self.timeout)
        except (EOFError, OSError):
            raise self._died(worker, url) from None
        if reply is None:
            worker.kill()
            self._retire(worker)
            raise ParseError(f"parsing took more than {self.timeout:g} s", url=url)
        answer = pickle.loads(reply)  # noqa: S301 - from our own worker, over its own pipe
        if answer[0] == pipeline.OK:
            value: R = answer[1]
            return value
        if answer[0] == pipeline.OUT_OF_MEMORY:
            self._retire(worker)  # it exits by itself after saying so
            limit = size_text(self.memory_limit) if self.memory_limit else "none"
            raise ParseError(f"the parser ran out of memory (limit {limit})", url=url)
        _, error, trace = answer
        if not isinstance(error, SyndicationError):
            error.__cause__ = _RemoteTraceback(trace)  # a bug: keep where it happened
        raise error

    def _hand_over(self, request: bytes, url: str) -> _Worker:
        """This thread's worker (started if needed) once it has taken ``request``.

        A worker that died before taking it (the OOM killer, an operator, while it
        waited) costs the document nothing: a new worker takes it. Only once: a
        document that new workers cannot even take fails.
        """
        for attempt in (1, 2):
            worker = getattr(self._own, "worker", None) or self._start(url)
            try:
                worker.send(request)
                taken = worker.receive(self.timeout)  # the worker's receipt: b""
            except (EOFError, OSError):
                if attempt == 2 or self._closed:
                    raise self._died(worker, url) from None
                log.warning("the idle parse worker %s died (%s)", worker.pid, worker.exit_reason())
                self._retire(worker)
                continue
            if taken is None:  # not even a receipt: a stopped (SIGSTOP) or wedged process
                worker.kill()
                self._retire(worker)
                raise ParseError(f"parsing took more than {self.timeout:g} s", url=url)
            return worker
        raise AssertionError("unreachable")  # pragma: no cover

    def _died(self, worker: _Worker, url: str) -> ParseError:
        """The error for the document ``worker`` died with, the worker forgotten."""
        reason = worker.exit_reason()
        self._retire(worker)
        if self._closed:
            return _stopping(url)
        return ParseError(f"the parse worker died ({reason})", url=url)

    def _start(self, url: str) -> _Worker:
        with self._lock:
            if self._closed:
                raise _stopping(url)
        worker = _Worker(context=self._context, memory_limit=self.memory_limit)
        with self._lock:
            self._live.add(worker)
            closed = self._closed
        if closed:  # close() ran while it started: it saw no such worker
            worker.kill()
            self._retire(worker)
            raise _stopping(url)
        self._own.worker = worker
        return worker

    def _retire(self, worker: _Worker) -> None:
        """Forget a worker that is gone or going; the next call starts a new one."""
        worker.close()
        with self._lock:
            self._live.discard(worker)
        if getattr(self._own, "worker", None) is worker:
            self._own.worker = None


class _Worker:
    """One worker process and our end of its pipe."""

    def __init__(
        self, *, context: multiprocessing.context.ForkServerContext, memory_limit: int | None
    ) -> None:
        ours, theirs = context.Pipe(duplex=True)
        self.process = context.Process(
            target=pipeline.serve, args=(theirs, memory_limit), name="syndication-parse", daemon=True
        )
        self.process.start()
        theirs.close()  # the worker holds its end: when it dies, ours reads end-of-file
        self.connection: Connection = ours
        self.pid = self.process.pid

    def send(self, request: bytes) -> None:
        self.connection.send_bytes(request)

    def receive(self, timeout: float) -> bytes | None:
        """The reply, or ``None`` when none came within ``timeout`` seconds.

        Raises:
            EOFError, OSError: the worker died.
        """
        if not self.connection.poll(timeout):
            return None
        return self.connection.recv_bytes()

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.process.kill()

    def exit_reason(self) -> str:
        """How the process ended: "signal 9, SIGKILL" or "exit code 1"."""
        self.process.join(STOP_WAIT)
        code = self.process.exitcode
        if code is None:
            return "it closed its pipe"
        if code < 0:
            try:
                return f"signal {-code}, {signal.Signals(-code).name}"
            except ValueError:
                return f"signal {-code}"
        return f"exit code {code}"

    def close(self) -> None:
        self.process.join(STOP_WAIT)
        if self.process.exitcode is None:  # still running: it cannot be left behind
            self.kill()
            self.process.join()
        self.connection.close()


def _stopping(url: str) -> ParseError:
    return ParseError("parsing stopped: the service is stopping", url=url)


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, as the worker formatted it."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
