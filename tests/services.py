"""Private service instances that a test may stop, kill and restart: a redis-server and a PostgreSQL cluster on
free ports of their own, so the shared ones (127.0.0.1:6379 / :5432, used by everyone's tests) stay up.

Both need the server binaries on the machine; :func:`missing_binaries` says which are absent so a test can skip
with that reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers import free_port


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or next(iter(glob.glob("/usr/bin/redis-server")), None)


def pg_bin_dir() -> Path | None:
    """The directory holding initdb and pg_ctl (Debian keeps them under /usr/lib/postgresql/N/bin)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists() and Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    return None


def missing_binaries() -> list[str]:
    missing = []
    if pg_bin_dir() is None:
        missing.append("initdb/pg_ctl (PostgreSQL server)")
    if redis_server_binary() is None:
        missing.append("redis-server")
    return missing


def wait_for_port(port: int, within: float = 15.0, *, up: bool = True) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            listening = s.connect_ex(("127.0.0.1", port)) == 0
        if listening == up:
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not {'open' if up else 'close'} within {within} s")


class PrivateRedis:
    """``redis-server --port P --save '' --appendonly no``: a restart loses everything, as a crash would."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = redis_server_binary() or "redis-server"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, 10)
        except RuntimeError:
            self.stop()
            raise RuntimeError("private redis-server did not start") from None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (initdb into a temp dir, TCP only on a free port, trust auth).

    PostgreSQL refuses to run as root: as root the cluster belongs to the ``postgres`` user and every server
    command runs through ``runuser``."""

    def __init__(self) -> None:
        bindir = pg_bin_dir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found")
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="scrm-fault-pg-"))
        self.datadir = self.root / "data"
        self.logfile = self.root / "server.log"
        self._as_other_user = os.geteuid() == 0
        if self._as_other_user:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.root.chmod(0o755)

    def admin_dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_other_user:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync")

    def _options(self) -> str:
        # TCP on loopback only; no unix socket (the default directory may not be writable); no fsync (a test cluster).
        return f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c max_connections=200"

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-o", self._options(), "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` (clean shutdown, sessions cut) or ``immediate`` (like a crash: recovery at next start)."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", "30", "stop", check=False)

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.datadir), "status", check=False).returncode == 0

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if self.running():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def in_ci() -> bool:
    """CI=true: a test whose tool is missing fails there (a broken setup), instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
