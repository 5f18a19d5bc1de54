"""``python run.py demo`` as a user runs it: a subprocess that must finish the scripted scenario and exit 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT = 120  # seconds


def test_demo_runs_the_whole_scenario_and_exits_0() -> None:
    # No SCRM_* settings or config file from the caller: the demo must work from a bare checkout.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRM_")}
    env.update({"SCRM_CONFIG_FILE": os.devnull, "PYTHONIOENCODING": "utf-8"})
    done = subprocess.run(
        [sys.executable, "run.py", "demo"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=DEMO_TIMEOUT,
        check=False,
    )
    out = done.stdout.decode("utf-8", "replace")
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, f"exit {done.returncode}\n--- stdout\n{out}\n--- stderr\n{err}"
    assert re.search(r"\bSO\d{6,}\b", out), out
    assert "SF1234567890" in out and "已发货" in out, out
    assert "✓ 全部" in out, out
