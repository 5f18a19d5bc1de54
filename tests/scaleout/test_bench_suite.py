"""``run.py bench``'s orchestration with stand-in parts (the real benchmarks take minutes): results, the time
budget, the summary section on top of the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench import suite

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_the_options() -> None:
    done = subprocess.run([sys.executable, "run.py", "bench", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for option in ("--only", "--quick", "--seconds", "--no-write", "--hard-timeout"):
        assert option in done.stdout


def test_results_budget_and_summary(tmp_path: Path) -> None:
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\nintro\n\n<!-- bench:orders -->\n## Orders\nold\n<!-- /bench:orders -->\n", encoding="utf-8")
    py = [sys.executable, "-c"]
    parts = [
        suite.Part("fine", "passes", [*py, "print('ok')"], lambda section: "42 things/s"),
        suite.Part("broken", "fails a check", [*py, "raise SystemExit(1)"]),
        suite.Part("slow", "outlives the budget", [*py, "import time; time.sleep(60)"]),
        suite.Part("late", "never starts", [*py, "print('late')"]),
    ]
    code = suite.main(["--hard-timeout", "9"], selected=parts, path=md)
    assert code == 1
    text = md.read_text(encoding="utf-8")
    assert text.index("<!-- bench:summary -->") < text.index("<!-- bench:orders -->") and "old" in text
    summary = text.split("<!-- bench:summary -->")[1].split("<!-- /bench:summary -->")[0]
    rows = {line.split("|")[1].strip(): line for line in summary.splitlines() if line.startswith("| ") and "|" in line[2:]}
    assert "✔ checks passed" in rows["fine"] and "42 things/s" in rows["fine"]
    assert "a check failed" in rows["broken"]
    assert "timed out" in rows["slow"] and "budget" in rows["slow"]
    assert "not run" in rows["late"]
    for fact in ("cores", "CPU", "memory", "Python", "PostgreSQL", "Redis", "SQLite", "load before start", "shared"):
        assert fact in summary
