"""``python run.py archive import FILE.jsonl``: load decrypted chat-archive records from a file (one JSON record per
line, as the sidecar can write them when it cannot reach the server), with a progress bar. Same rules as the API:
bad lines are reported by number and skipped, the rest stored once (a file imported twice adds nothing).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from config import Settings
from scrm.core import migrate
from scrm.core.clock import Clock
from scrm.core.db import Database
from scrm.core.jobs import make_queue
from scrm.core.runtime import Runtime
from scrm.crm.archive import services

BAR_WIDTH = 30


def _bar(done: int, total: int, out: IO[str]) -> None:
    filled = int(BAR_WIDTH * done / total) if total else BAR_WIDTH
    print(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} 行", end="", file=out, flush=True)


async def import_file(rt: Runtime, path: Path, *, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Import one file into ``rt``'s database; prints progress to ``out`` (stdout) and each bad line to ``err``
    (stderr) as ``FILE:LINE: reason``. Returns 0 when every line was usable, 1 when some were rejected."""
    stdout, stderr = out or sys.stdout, err or sys.stderr
    with path.open("rb") as fh:
        total = sum(1 for _ in fh)
    position = [0]

    def lines() -> Iterator[tuple[int, Any] | services.Rejected]:
        with path.open("rb") as fh:
            head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
            fh.seek(0)
            if head.startswith(b"["):
                # A JSON array file (not JSON Lines): read it whole, records numbered by position.
                try:
                    items, _ = services.split_body(fh.read(), "application/json")
                except services.UnreadableBody as exc:
                    yield services.Rejected(1, str(exc))
                    return
                yield from items
                return
            for got in services.parse_lines(fh):
                position[0] = got.line if isinstance(got, services.Rejected) else got[0]
                yield got

    def progress(_seen: int) -> None:
        if position[0] < total:  # the last step is drawn once, below
            _bar(position[0], total, stdout)

    report = await services.ingest(rt, lines(), progress=progress)
    _bar(total, total, stdout)
    print(file=stdout)
    for bad in report.rejected:
        print(f"{path}:{bad.line}: {bad.error}", file=stderr)
    n_bad = len(report.rejected)
    print(
        f"导入完成 / imported: {report.accepted} 条新记录 new, {report.duplicates} 条重复 duplicates, {n_bad} 行有问题 rejected",
        file=stdout,
    )
    return 1 if report.rejected else 0


async def _run(path: Path, settings: Settings) -> int:
    db = Database(settings.database_url)
    if not await migrate.is_current(db):
        if not db.is_sqlite:
            await db.dispose()
            print("数据库未迁移 / database not migrated: run `python run.py migrate` first", file=sys.stderr)
            return 2
        await migrate.upgrade(db)
    # Only the database is needed here: the outbox rows written are dispatched by the serving processes.
    rt = Runtime(settings=settings, db=db, clock=Clock(), jobs=make_queue(settings))
    try:
        return await import_file(rt, path)
    finally:
        await rt.close()


def main(path: str, settings: Settings) -> int:
    """The ``archive import FILE.jsonl`` command: 0 all good, 1 some lines rejected, 2 no such file."""
    file = Path(path)
    if not file.is_file():
        print(f"找不到文件 / no such file: {file}", file=sys.stderr)
        return 2
    return asyncio.run(_run(file, settings))
