"""What a benchmark run concluded — its correctness checks and performance targets — as one record that decides the
exit code, the ✔/✘ lines of its own section and its row in ``run.py bench``'s summary.

Each part builds a :class:`Report`, renders its section's verdict lines from it (:func:`verdict_lines`), writes it
as JSON (``--results PATH``; ``run.py bench`` gives every part a path in a directory of its own run) and exits
with :meth:`Report.exit_code`. The summary reads only those files (:func:`summary_result`), so it cannot disagree
with the sections or quote an earlier run. Pure functions, no I/O besides :func:`write_report` / :func:`read_report`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CHECK = "check"  # a correctness check: rows stored = 200s received, no oversell, same scores as pandas …
TARGET = "target"  # a performance target: end to end ≤ 1.5 × bare, p99 < 20 ms …

OK_CODE = 0
FAILED_CODE = 1
TIMEOUT_CODE = 2


@dataclass(frozen=True)
class Verdict:
    """One check or target: its name, whether it held, and the figures that say so (``"0.94× (≥ 0.8×)"``)."""

    name: str
    ok: bool
    detail: str = ""
    kind: str = CHECK


def check(name: str, ok: bool, detail: str = "") -> Verdict:
    return Verdict(name, bool(ok), detail, CHECK)


def at_most(name: str, measured: float, limit: float, unit: str = "", *, strict: bool = False) -> Verdict:
    """A target ``measured ≤ limit`` (``<`` with ``strict``); NaN (nothing measured) misses it."""
    met = not math.isnan(measured) and (measured < limit if strict else measured <= limit)
    return Verdict(name, met, f"{_num(measured)}{unit} ({'<' if strict else '≤'} {_num(limit)}{unit})", TARGET)


def at_least(name: str, measured: float, limit: float, unit: str = "") -> Verdict:
    """A target ``measured ≥ limit``; NaN (nothing measured) misses it."""
    met = not math.isnan(measured) and measured >= limit
    return Verdict(name, met, f"{_num(measured)}{unit} (≥ {_num(limit)}{unit})", TARGET)


def _num(value: float) -> str:
    if math.isnan(value):
        return "–"
    if value == int(value) and abs(value) >= 10:
        return f"{int(value):,}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:,.1f}"


@dataclass
class Report:
    """A part's conclusions and headline figures for one run."""

    part: str
    verdicts: list[Verdict] = field(default_factory=list)
    headline: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, *verdicts: Verdict) -> None:
        self.verdicts.extend(verdicts)

    @property
    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.ok]

    @property
    def ok(self) -> bool:
        """Every check held and every target was met; a run that concluded nothing is not a pass."""
        return bool(self.verdicts) and not self.failed

    def exit_code(self) -> int:
        return OK_CODE if self.ok else FAILED_CODE

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1, default=str)

    @classmethod
    def from_json(cls, text: str) -> Report:
        data = json.loads(text)
        verdicts = [Verdict(**v) for v in data.get("verdicts", [])]
        return cls(str(data["part"]), verdicts, str(data.get("headline", "")), dict(data.get("figures", {})))


def mark(ok: bool) -> str:
    return "✔" if ok else "✘"


def verdict_lines(report: Report) -> list[str]:
    """The section's verdict: one line per check and target, then the outcome (what the exit code says)."""
    lines = [f"- {mark(v.ok)} {v.kind} {v.name}{': ' + v.detail if v.detail else ''}" for v in report.verdicts]
    if report.ok:
        lines.append(f"- **{mark(True)} every check held and every target was met** (exit 0)")
    elif not report.verdicts:
        lines.append(f"- **{mark(False)} nothing was concluded** (exit 1)")
    else:
        names = ", ".join(v.name for v in report.failed)
        lines.append(f"- **{mark(False)} missed: {names}** (exit 1)")
    return lines


def summary_result(report: Report | None, code: int | None) -> str:
    """The summary's result cell for one part, from its exit code and the report it wrote in this run."""
    if code is None:
        return "not run (time budget spent)"
    if code == TIMEOUT_CODE:
        return f"{mark(False)} timed out"
    if report is None:
        return f"{mark(False)} exit {code}; it wrote no results"
    if report.exit_code() != code:
        return f"{mark(False)} exit {code} but its report says {'pass' if report.ok else 'fail'} — inconsistent"
    if report.ok:
        targets = sum(1 for v in report.verdicts if v.kind == TARGET)
        checks = len(report.verdicts) - targets
        return f"{mark(True)} {checks} check(s) held, {targets} target(s) met"
    return f"{mark(False)} " + "; ".join(f"{v.name}: {v.detail}" if v.detail else v.name for v in report.failed)


def summary_passed(report: Report | None, code: int | None) -> bool:
    """The part passed: it ran, exited 0 and its report of this run agrees."""
    return code == OK_CODE and report is not None and report.ok


def write_report(report: Report, path: Path | str | None) -> None:
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(report.to_json(), encoding="utf-8")
    tmp.replace(target)


def read_report(path: Path) -> Report | None:
    try:
        return Report.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
