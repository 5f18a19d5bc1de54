"""The product as real processes for the fault tests: one ``python run.py serve`` (sandbox WeCom emulator
mounted, jobs on Redis) and ``python run.py worker`` processes, on a private PostgreSQL and a private Redis.

Each process logs to a file under the test's tmp dir; :meth:`Stack.logs_tail` puts the tails in a failure message.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import free_port
from tests.services import PrivatePostgres, PrivateRedis

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Stack:
    pg: PrivatePostgres
    redis: PrivateRedis
    database: str
    workdir: Path
    port: int = field(default_factory=free_port)
    serve: Proc | None = None
    workers: list[Proc] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    _count: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCRM_")}
        env.update(
            {
                "SCRM_DATABASE_URL": self.pg.url(self.database),
                "SCRM_REDIS_URL": self.redis.url,
                "SCRM_SANDBOX": "1",  # the WeCom / Official Account emulator is mounted in the serve process
                "SCRM_HOST": "127.0.0.1",
                "SCRM_PORT": str(self.port),  # workers reach the emulator through the serve process's port
                "SCRM_LOG_FORMAT": "json",  # with the extras (error, ids): what a failed check needs
                "SCRM_LOG_LEVEL": "WARNING",
                "SCRM_HTTP_TIMEOUT": "2",  # the emulator's "hang" fault outlasts it
                "SCRM_JOB_RETRY_BASE": "0.5",
                "SCRM_OUTBOX_POLL_SECONDS": "0.5",
                "SCRM_WECOM_RATE_LIMIT_BACKOFF": "3",  # WeCom asks for ~60 s after 45009; a test cannot wait that long
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, *args: str) -> Proc:
        self._count += 1
        log = self.workdir / f"{self._count:02d}-{name}.log"
        handle = log.open("wb")
        popen = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), *args],
            cwd=ROOT,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a signal to the test's process group does not reach it
        )
        handle.close()
        return Proc(name, popen, log)

    def start_serve(self, *, wait: bool = True) -> None:
        self.serve = self._spawn("serve", "serve")
        if wait:
            self.wait_serving()

    def wait_serving(self) -> None:
        assert self.serve is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not self.serve.alive():
                raise RuntimeError("run.py serve exited:\n" + self.logs_tail())
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            time.sleep(0.2)
        raise RuntimeError("run.py serve did not answer /healthz:\n" + self.logs_tail())

    def start_worker(self) -> Proc:
        proc = self._spawn(f"worker{len(self.workers) + 1}", "worker")
        self.workers.append(proc)
        return proc

    def wait_workers_ready(self, within: float = 60.0) -> None:
        """Until every worker polls the queue: arq writes its health-check key on its first poll, after the
        startup hook (runtime built); each worker holds a Redis connection of its own by then."""
        import redis

        client = redis.Redis.from_url(self.redis.url)
        deadline = time.monotonic() + within
        try:
            while time.monotonic() < deadline:
                dead = [w.name for w in self.workers if not w.alive()]
                if dead:
                    raise RuntimeError(f"{dead} exited:\n" + self.logs_tail())
                with contextlib.suppress(redis.RedisError):
                    clients = int(client.info("clients")["connected_clients"]) - 1  # less this one
                    if client.exists("scrm:jobs:health-check") and clients >= len(self.workers):
                        time.sleep(0.5)
                        return
                time.sleep(0.1)
        finally:
            client.close()
        raise RuntimeError("workers did not start polling:\n" + self.logs_tail())

    def kill_worker(self, proc: Proc) -> None:
        """SIGKILL: no shutdown hook runs, jobs in flight are abandoned mid-way."""
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(10)

    def stop(self) -> None:
        for proc in [*self.workers, *([self.serve] if self.serve else [])]:
            if proc.alive():
                proc.popen.send_signal(signal.SIGTERM)
        for proc in [*self.workers, *([self.serve] if self.serve else [])]:
            try:
                proc.popen.wait(15)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(5)

    def logs_tail(self, lines: int = 40) -> str:
        out = []
        for log in sorted(self.workdir.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()
            out.append(f"---- {log.name} (last {lines} of {len(text)} lines)\n" + "\n".join(text[-lines:]))
        return "\n".join(out)

    def exit_codes(self) -> dict[str, int | None]:
        return {p.name: p.popen.poll() for p in [*([self.serve] if self.serve else []), *self.workers]}

    def errors_in_logs(self) -> list[str]:
        """Tracebacks and ERROR lines in the processes' logs (diagnostics for a failed check)."""
        found = []
        for log in sorted(self.workdir.glob("*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if "Traceback" in line or '"level": "error"' in line or '"level": "critical"' in line:
                    found.append(f"{log.name}: {line[:300]}")
        return found
