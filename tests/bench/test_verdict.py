"""The verdict logic every benchmark shares (bench/verdict.py): a missed target is a ✘ and a non-zero exit, and
the summary's cell agrees with the part's own section — both come from one report."""

from __future__ import annotations

import math
from pathlib import Path

from bench.verdict import (
    TARGET,
    Report,
    Verdict,
    at_least,
    at_most,
    check,
    read_report,
    summary_passed,
    summary_result,
    verdict_lines,
    write_report,
)


def rfm_report(ratio: float) -> Report:
    report = Report("rfm", headline="ours 17.35 s")
    report.add(check("pandas = ours", True, "identical for every customer"), at_most("ours end to end / bare", ratio, 1.5, "×"))
    return report


def test_targets_compare_as_stated() -> None:
    assert at_most("x", 1.5, 1.5).ok and not at_most("x", 1.51, 1.5).ok
    assert not at_most("p99", 20.0, 20.0, " ms", strict=True).ok and at_most("p99", 19.9, 20.0, " ms", strict=True).ok
    assert at_least("x", 0.8, 0.8).ok and not at_least("x", 0.79, 0.8).ok
    assert at_most("x", 1.2, 1.5, "×").detail == "1.2× (≤ 1.5×)"
    assert at_most("x", 1.2, 1.5).kind == TARGET and check("c", True).kind != TARGET


def test_nothing_measured_misses_the_target() -> None:
    assert not at_most("x", math.nan, 1.5).ok
    assert not at_least("x", math.nan, 0.8).ok


def test_a_missed_target_fails_the_run_even_when_every_check_held() -> None:
    report = rfm_report(1.83)
    assert not report.ok and report.exit_code() == 1
    assert [v.name for v in report.failed] == ["ours end to end / bare"]
    assert rfm_report(1.2).exit_code() == 0


def test_a_report_that_concluded_nothing_is_not_a_pass() -> None:
    assert Report("broadcast").exit_code() == 1
    assert "nothing was concluded" in verdict_lines(Report("broadcast"))[-1]


def test_section_lines_mark_every_verdict_and_end_with_the_outcome() -> None:
    lines = verdict_lines(rfm_report(1.83))
    assert lines[0] == "- ✔ check pandas = ours: identical for every customer"
    assert lines[1] == "- ✘ target ours end to end / bare: 1.83× (≤ 1.5×)"
    assert lines[-1] == "- **✘ missed: ours end to end / bare** (exit 1)"
    assert verdict_lines(rfm_report(1.2))[-1].startswith("- **✔ every check held")


def test_summary_cell_says_what_the_section_says() -> None:
    missed = rfm_report(1.83)
    assert summary_result(missed, missed.exit_code()) == "✘ ours end to end / bare: 1.83× (≤ 1.5×)"
    met = rfm_report(1.2)
    assert summary_result(met, 0) == "✔ 1 check(s) held, 1 target(s) met"
    assert summary_passed(met, 0) and not summary_passed(missed, 1)


def test_summary_refuses_an_exit_code_that_contradicts_the_report() -> None:
    missed = rfm_report(1.83)
    cell = summary_result(missed, 0)
    assert cell.startswith("✘") and "inconsistent" in cell
    assert not summary_passed(missed, 0)
    assert summary_result(rfm_report(1.2), 1).startswith("✘")


def test_summary_without_a_report_of_this_run_is_a_fail() -> None:
    assert summary_result(None, 0) == "✘ exit 0; it wrote no results"
    assert not summary_passed(None, 0)
    assert summary_result(None, None) == "not run (time budget spent)"
    assert summary_result(None, 2) == "✘ timed out"


def test_report_round_trips_through_json(tmp_path: Path) -> None:
    report = rfm_report(1.83)
    report.figures = {"ours_s": 17.35}
    path = tmp_path / "run" / "rfm.json"
    write_report(report, path)
    again = read_report(path)
    assert again == report
    assert read_report(tmp_path / "absent.json") is None
    (tmp_path / "torn.json").write_text("{", encoding="utf-8")
    assert read_report(tmp_path / "torn.json") is None
    assert Verdict("a", True) == Report.from_json(Report("x", [Verdict("a", True)]).to_json()).verdicts[0]
