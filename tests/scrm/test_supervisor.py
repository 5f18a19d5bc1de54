"""``serve --workers N``'s supervisor with stand-in servers (forked for real, no app): restarts with back-off,
fatal exit codes, giving up, SIGTERM forwarded; and which settings are refused."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from scrm.app import supervisor
from scrm.app.supervisor import Supervisor, bind, refuse_reason
from tests.conftest import make_settings
from tests.helpers import free_port


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "BACKOFF_FIRST", 0.02)
    monkeypatch.setattr(supervisor, "STABLE_AFTER", 60.0)


def run(sup: Supervisor, *, term_after: float | None = None) -> tuple[int, float]:
    if term_after is not None:
        threading.Timer(term_after, os.kill, (os.getpid(), signal.SIGTERM)).start()
    t0 = time.monotonic()
    code = sup.run()
    return code, time.monotonic() - t0


def binder() -> tuple[int, object]:
    port = free_port()
    return port, lambda: bind("127.0.0.1", port)


def test_a_crashing_server_is_restarted_then_the_supervisor_gives_up() -> None:
    _, bind_port = binder()
    logs: list[str] = []
    sup = Supervisor(2, lambda sock: 1, bind_port, log=logs.append)  # type: ignore[arg-type]
    code, took = run(sup)
    assert code == 1 and took < 10
    assert any("giving up" in line for line in logs)
    assert sum("restarting in" in line for line in logs) >= supervisor.MAX_FAILURES


def test_exit_code_2_is_not_restarted() -> None:
    _, bind_port = binder()
    logs: list[str] = []
    code, took = run(Supervisor(2, lambda sock: 2, bind_port, log=logs.append))  # type: ignore[arg-type]
    assert code == 2 and took < 10
    assert not any("restarting in" in line for line in logs)


def test_restart_then_sigterm_stops_everyone(tmp_path: Path) -> None:
    port, bind_port = binder()
    starts = tmp_path / "starts"

    def serve_one(sock: socket.socket) -> int:
        with starts.open("a") as f:
            f.write(f"{os.getpid()}\n")
        if len(starts.read_text().split()) == 1:
            return 1  # the first server ever started crashes; its restart serves
        sock.setblocking(True)
        while True:
            conn, _ = sock.accept()
            conn.sendall(f"{os.getpid()}\n".encode())
            conn.close()

    logs: list[str] = []
    sup = Supervisor(2, serve_one, bind_port, log=logs.append)  # type: ignore[arg-type]
    answers: list[int] = []

    def client() -> None:
        time.sleep(1.0)
        for _ in range(30):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                answers.append(int(c.makefile().readline()))
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=client, daemon=True).start()
    code, took = run(sup)
    assert code == 0 and took < 20
    pids = [int(p) for p in starts.read_text().split()]
    assert len(pids) == 3  # two servers and the restart of the one that crashed
    assert set(answers) <= set(pids[1:]) and len(set(answers)) == 2, answers  # both live servers took connections
    assert any("SIGTERM received" in line for line in logs)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_what_several_processes_need() -> None:
    embedded = make_settings()
    assert refuse_reason(embedded, 1) is None
    reason = refuse_reason(embedded, 2)
    assert reason and "SCRM_REDIS_URL" in reason and "SQLite" in reason and "sandbox" in reason
    prod = make_settings(
        database_url="postgresql+asyncpg://u@h/db", redis_url="redis://127.0.0.1:6379/0", sandbox="0", admin_token="t",
        wecom_corp_id="ww1", wecom_agent_id="1", wecom_secret="s", wecom_token="t", wecom_aes_key="k" * 43,
    )  # fmt: skip
    assert refuse_reason(prod, 4) is None
    assert "SQLite" in (refuse_reason(prod.replace(database_url="sqlite+aiosqlite:///x.db"), 2) or "")
