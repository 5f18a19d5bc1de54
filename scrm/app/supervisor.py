"""``run.py serve --workers N``: N server processes on one port, and a supervisor.

The parent loads what every server needs and would otherwise load on its own (the app's modules), moves those
objects out of the garbage collector's reach (``gc.freeze``: a collection in a server would otherwise write to
every object's header and un-share its page), then forks the servers; they share those pages copy-on-write and
start in a fraction of the time. jieba's dictionary is not among them: with several servers the customers'
messages are read by ``run.py worker`` processes. The parent runs no event loop and opens no database or Redis
connection, so forking it is safe.

Sockets: the parent binds one ``SO_REUSEPORT`` listening socket per server before forking it, and each server
closes the others' sockets. The kernel then spreads new connections over the live sockets by hash. (One shared
socket, gunicorn's way, was tried first: an asyncio server accepts every pending connection in one go, so a burst
— WeCom retrying a callback three times at once — all went to one process.) When a server dies its socket is
closed, so new connections go to the others until it is back.

Supervision: a server that dies is forked again after a back-off (0.5 s, doubling to 30 s; reset once a server
has run for a minute). A server exiting with code 2 (configuration error, database not migrated) stops
everything with code 2 — restarting cannot fix it. More than :data:`MAX_FAILURES` quick deaths in a row of
one slot stop everything with code 1. SIGTERM or SIGINT is forwarded to the servers as SIGTERM (aiohttp's
graceful shutdown: stop accepting, finish requests in flight); those still running after ``grace`` seconds
are killed.

Metrics: ``/metrics`` is answered by whichever server gets the connection, so the servers keep their values in a
shared directory (prometheus_client's multiprocess mode, set up by the caller) and every scrape combines them.

Linux (``SO_REUSEPORT`` balancing, ``os.fork``); the caller refuses SQLite, in-process jobs and the sandbox for N > 1.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

BACKOFF_FIRST = 0.5  # seconds before the first restart of a slot
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0  # a server that ran this long counts as healthy: its slot's back-off starts over
MAX_FAILURES = 5  # quick deaths in a row of one slot before the supervisor gives up
EXIT_FATAL = 2  # a server's exit code meaning "do not restart" (configuration error, not migrated)
_FORWARDED = {signal.SIGTERM, signal.SIGINT}


@dataclass
class Slot:
    index: int
    pid: int = 0
    sock: socket.socket | None = None  # open while this slot's server runs (or is about to)
    started: float = 0.0
    failures: int = 0  # quick deaths in a row
    restart_at: float = 0.0  # monotonic time of the next start when pid == 0


def refuse_reason(settings: object, workers: int) -> str | None:
    """Why ``--workers N`` cannot run with these settings, or None. Several serving processes need state that
    lives outside them: in-process jobs would run in every process (each cron N times, job-id dedupe per
    process), the sandbox emulator keeps its WeCom state in process memory, and SQLite takes one writer at a
    time across processes (more processes add lock waits, not throughput; the embedded setup is one shop)."""
    if workers <= 1:
        return None
    problems = []
    if not getattr(settings, "redis_url", ""):
        problems.append("SCRM_REDIS_URL is empty: in-process jobs and crons would run once per process")
    if str(getattr(settings, "database_url", "")).startswith("sqlite"):
        problems.append("the database is SQLite: one writer at a time, shared by every process")
    if getattr(settings, "is_sandbox", False):
        problems.append("sandbox mode: the WeCom emulator's state lives in one process's memory")
    if not problems:
        return None
    return (
        f"--workers {workers} needs PostgreSQL, Redis and real (or explicitly configured) WeCom settings; "
        + "; ".join(problems)
        + ". Set SCRM_DATABASE_URL=postgresql+asyncpg://…, SCRM_REDIS_URL=redis://…, SCRM_SANDBOX=0, run "
        "`python run.py migrate` and `python run.py worker` processes for the jobs — or use --workers 1."
    )


@dataclass
class MetricsDir:
    path: str
    owned: bool  # made here (removed at exit) rather than given by the operator

    def cleanup(self) -> None:
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)


def multiprocess_metrics_dir() -> MetricsDir:
    """Point prometheus_client at a directory shared by the server processes (``PROMETHEUS_MULTIPROC_DIR``, or a
    fresh temporary one), emptied first as its documentation asks. Call before anything imports prometheus_client."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        os.makedirs(given, exist_ok=True)
        for name in os.listdir(given):
            if name.endswith(".db"):
                os.unlink(os.path.join(given, name))
        return MetricsDir(given, owned=False)
    path = tempfile.mkdtemp(prefix="scrm-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return MetricsDir(path, owned=True)


def bind(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """One server's listening socket; every server's binds the same port (``SO_REUSEPORT``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=backlog, reuse_port=True)
    sock.setblocking(False)
    return sock


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the supervisor dies (even by SIGKILL), so no server is orphaned."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


class Supervisor:
    def __init__(self, workers: int, serve_one: Callable[[socket.socket], int], bind: Callable[[], socket.socket], *,
                 grace: float = 15.0, log: Callable[[str], None] | None = None,
                 on_exit: Callable[[int], None] | None = None) -> None:  # fmt: skip
        self.slots = [Slot(i) for i in range(workers)]
        self.serve_one = serve_one
        self.bind = bind
        self.grace = grace
        self.log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self.on_exit = on_exit  # called with the pid of every server that ended (metrics of dead processes)
        self.stopping = False
        self.exit_code = 0
        self.parent = os.getpid()

    # ---- children ---------------------------------------------------------------------------------------
    def _spawn(self, slot: Slot) -> None:
        if slot.sock is None:
            slot.sock = self.bind()
        # Signals stay blocked across the fork so the child never runs the supervisor's handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
            raise
        if pid == 0:  # the server process
            code = 1
            try:
                for signum in _FORWARDED:
                    signal.signal(signum, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
                _die_with_parent()
                if os.getppid() != self.parent:  # the supervisor died before prctl took effect
                    os._exit(1)
                for other in self.slots:  # a socket nobody accepts on would still get its share of connections
                    if other.sock is not None and other is not slot:
                        other.sock.close()
                code = int(self.serve_one(slot.sock) or 0)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # a server must never return into the supervisor's code
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
        slot.pid = pid
        slot.started = time.monotonic()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            ran = time.monotonic() - slot.started
            slot.pid = 0
            self._close(slot)
            if self.on_exit is not None:
                with contextlib.suppress(Exception):
                    self.on_exit(pid)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                continue
            what = f"exited with code {code}" if code >= 0 else f"was killed by {signal.Signals(-code).name}"
            if code == EXIT_FATAL:
                self.log(f"server {slot.index} (pid {pid}) {what}: configuration problem, not restarting; stopping")
                self.stop(EXIT_FATAL)
                continue
            slot.failures = 1 if ran >= STABLE_AFTER else slot.failures + 1
            if slot.failures > MAX_FAILURES:
                self.log(f"server {slot.index} (pid {pid}) {what}; {MAX_FAILURES} quick failures in a row — giving up")
                self.stop(1)
                continue
            delay = min(BACKOFF_FIRST * 2 ** (slot.failures - 1), BACKOFF_MAX)
            slot.restart_at = time.monotonic() + delay
            self.log(f"server {slot.index} (pid {pid}) {what} after {ran:.1f} s; restarting in {delay:.1f} s")

    @staticmethod
    def _close(slot: Slot) -> None:
        if slot.sock is not None:
            slot.sock.close()
            slot.sock = None

    # ---- control ----------------------------------------------------------------------------------------
    def stop(self, code: int = 0) -> None:
        if not self.stopping:
            self.stopping = True
            self.exit_code = code
        for slot in self.slots:
            if slot.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGTERM)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            return
        self.log(f"{signal.Signals(signum).name} received: stopping the servers")
        self.stop(0)

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in _FORWARDED}
        try:
            while not self.stopping:
                self._reap()
                now = time.monotonic()
                for slot in self.slots:
                    if not slot.pid and not self.stopping and now >= slot.restart_at:
                        try:
                            self._spawn(slot)
                        except OSError as exc:  # the port (re)bind or the fork itself failed: try again later
                            self._close(slot)
                            slot.failures += 1
                            if slot.failures > MAX_FAILURES:
                                self.log(f"server {slot.index} cannot start: {exc} — giving up")
                                self.stop(1)
                                break
                            slot.restart_at = now + min(BACKOFF_FIRST * 2 ** (slot.failures - 1), BACKOFF_MAX)
                            self.log(f"server {slot.index} cannot start: {exc}; trying again")
                time.sleep(0.1)
            deadline = time.monotonic() + self.grace
            while any(s.pid for s in self.slots) and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.05)
            for slot in self.slots:
                if slot.pid:
                    self.log(f"server {slot.index} (pid {slot.pid}) still running after {self.grace:.0f} s: killing it")
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(slot.pid, signal.SIGKILL)
            while any(s.pid for s in self.slots):
                self._reap()
                time.sleep(0.05)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for slot in self.slots:
                self._close(slot)
        return self.exit_code
