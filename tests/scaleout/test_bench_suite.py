"""``run.py bench``'s orchestration with stand-in parts (the real benchmarks take minutes): results, the time
budget, the summary section on top of the file — every result read from what the part concluded in this run."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench import suite

ROOT = Path(__file__).resolve().parents[2]

# A stand-in part: writes a report to its --results path (as bench.verdict does) and exits with the given code.
STAND_IN = """
import sys
from bench.verdict import Report, Verdict, write_report
ok, code = sys.argv[1] == "pass", int(sys.argv[2])
path = sys.argv[sys.argv.index("--results") + 1]
write_report(Report("x", [Verdict("p99 < 20 ms", ok, "12 ms" if ok else "31 ms", "target")], "42 things/s"), path)
raise SystemExit(code)
"""


def test_help_lists_the_options() -> None:
    done = subprocess.run([sys.executable, "run.py", "bench", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for option in ("--only", "--quick", "--seconds", "--no-write", "--hard-timeout"):
        assert option in done.stdout


def test_results_budget_and_summary(tmp_path: Path) -> None:
    md = tmp_path / "BENCHMARKS.md"
    md.write_text(
        "# Benchmarks\n\nintro\n\n<!-- bench:orders -->\n## Orders\nold: 99,999 orders/s ✔\n<!-- /bench:orders -->\n", encoding="utf-8"
    )
    py = [sys.executable, "-c"]
    parts = [
        suite.Part("fine", "passes", [*py, STAND_IN, "pass", "0"]),
        suite.Part("missed", "misses its target", [*py, STAND_IN, "miss", "1"]),
        suite.Part("lying", "exits 0 on a missed target", [*py, STAND_IN, "miss", "0"]),
        suite.Part("orders", "breaks before concluding (its old section stays)", [*py, "raise SystemExit(0)"]),
        suite.Part("slow", "outlives the budget", [*py, "import time; time.sleep(60)"]),
        suite.Part("late", "never starts", [*py, "print('late')"]),
    ]
    code = suite.main(["--hard-timeout", "12"], selected=parts, path=md)
    assert code == 1
    text = md.read_text(encoding="utf-8")
    assert text.index("<!-- bench:summary -->") < text.index("<!-- bench:orders -->") and "old" in text
    summary = text.split("<!-- bench:summary -->")[1].split("<!-- /bench:summary -->")[0]
    rows = {line.split("|")[1].strip(): line for line in summary.splitlines() if line.startswith("| ") and "|" in line[2:]}
    assert "✔ 0 check(s) held, 1 target(s) met" in rows["fine"] and "42 things/s" in rows["fine"]
    assert "✘ p99 < 20 ms: 31 ms" in rows["missed"]
    assert "✘" in rows["lying"] and "inconsistent" in rows["lying"] and "✔" not in rows["lying"]
    assert "✘ exit 0; it wrote no results" in rows["orders"] and "99,999" not in rows["orders"]  # nothing of the old section
    assert "timed out" in rows["slow"] and "budget" in rows["slow"]
    assert "not run" in rows["late"]
    assert "✘ 1 of 6 part(s) passed" in summary
    for fact in ("cores", "CPU", "memory", "Python", "PostgreSQL", "Redis", "SQLite", "load before start", "shared"):
        assert fact in summary


def suite_args(*argv: str) -> argparse.Namespace:
    names = [p.name for p in suite.parts(argparse.Namespace(quick=False, seconds=0, no_write=False))]
    return suite.parse_args(list(argv), names)


def test_the_soak_runs_only_when_named() -> None:
    assert "soak" not in [p.name for p in suite.chosen_parts(suite_args())]
    assert [p.name for p in suite.chosen_parts(suite_args("--only", "rfm,soak"))] == ["rfm", "soak"]
    # Its half hour comes on top of the run's budget, so the budget does not stop it.
    assert suite_args("--only", "soak").hard_timeout >= 30 * 60 + suite_args().hard_timeout
    (quick,) = suite.chosen_parts(suite_args("--only", "soak", "--quick", "--no-write"))
    assert quick.argv[2:] == ["bench.soak", "--minutes", "5", "--interval", "5", "--no-write"]
