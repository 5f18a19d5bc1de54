"""RFM rules on plain values: the ``[rfm]`` settings, scores 1–5 (quintiles or cut points), business-day recency
and the 8 classic segments. No I/O; :mod:`tagging.rfm.sql` states the same rules in SQL.

Which method scores (``scoring``): ``auto`` (the default) uses absolute cut points while fewer than
``small_shop_customers`` customers have orders in the window, and quintiles from then on. Ranks among a handful of
customers say little — with three customers, one who ordered today but not more recently than the others ranks
lowest (R=1, "挽留客户"); cut points give every customer the score their own figures earn. The decision is made
from the same count on the full and on the one-customer path (:func:`method_for`), so both agree.

Quintiles are rank based: ``score = 1 + ⌊5·(rank − 1) / n⌋`` with ``RANK()`` (equal values share the lowest rank),
so equal customers always get the same score. ``NTILE(5)`` would split a run of equal values across two scores
at an arbitrary row — unstable from run to run and across backends. Recency counts business days (Asia/Shanghai
dates: ordered yesterday = 1).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from config.settings import CONFIG_DIR

CONFIG_FILE = CONFIG_DIR / "segments.toml"
DAY_SECONDS = 86_400
LOCAL_OFFSET_SECONDS = 8 * 3600  # Asia/Shanghai is UTC+8 all year (no daylight saving since 1991)

# The 8 classic segments by (R high, F high, M high).
SEGMENTS: dict[tuple[bool, bool, bool], str] = {
    (True, True, True): "重要价值客户",
    (True, False, True): "重要发展客户",
    (False, True, True): "重要保持客户",
    (False, False, True): "重要挽留客户",
    (True, True, False): "一般价值客户",
    (True, False, False): "一般发展客户",
    (False, True, False): "一般保持客户",
    (False, False, False): "一般挽留客户",
}
SEGMENT_NAMES: tuple[str, ...] = tuple(SEGMENTS.values())


# ---- configuration ----------------------------------------------------------------------------------------
SCORING_METHODS = ("auto", "quintiles", "cuts")
METHOD_ZH = {"quintiles": "五分位排名（按客户在全部有订单客户中的排名打分）", "cuts": "固定分界（按天数、订单数、金额的分界点打分）"}


@dataclass(frozen=True)
class RfmConfig:
    window_days: int = 365
    scoring: str = "auto"  # auto | quintiles | cuts
    small_shop_customers: int = 200  # auto: below this many customers with orders, cut points; from it on, quintiles
    high_score: int = 3
    recency_cuts: tuple[int, ...] = (7, 30, 90, 180)
    frequency_cuts: tuple[int, ...] = (1, 2, 4, 8)
    monetary_cuts_fen: tuple[int, ...] = (10_000, 50_000, 200_000, 1_000_000)


def _cuts(section: dict[str, Any], key: str, default: tuple[int, ...], scale: int = 1) -> tuple[int, ...]:
    raw = section.get(key)
    if raw is None:
        return default
    ok = isinstance(raw, list) and len(raw) == 4 and all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in raw)
    values = tuple(round(v * scale) for v in raw) if ok else ()
    if not ok or list(values) != sorted(set(values)):
        raise ValueError(f"[rfm] {key} must be four ascending non-negative numbers")
    return values


def parse_rfm_config(data: dict[str, Any]) -> RfmConfig:
    """Validate the ``[rfm]`` table of config/segments.toml; a ValueError names the key that is wrong."""
    section = data.get("rfm", {})
    if not isinstance(section, dict):
        raise ValueError("[rfm] must be a table")
    known = {"window_days", "scoring", "small_shop_customers", "high_score", "recency_cuts", "frequency_cuts", "monetary_cuts_yuan"}
    unknown = set(section) - known
    if unknown:
        raise ValueError(f"[rfm] unknown keys: {', '.join(sorted(unknown))}")
    window = section.get("window_days", 365)
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= 3650:
        raise ValueError("[rfm] window_days must be a whole number of days from 1 to 3650")
    scoring = section.get("scoring", "auto")
    if scoring not in SCORING_METHODS:
        raise ValueError('[rfm] scoring must be "auto", "quintiles" or "cuts"')
    small = section.get("small_shop_customers", 200)
    if not isinstance(small, int) or isinstance(small, bool) or not 0 <= small <= 10_000_000:
        raise ValueError("[rfm] small_shop_customers must be a whole number ≥ 0")
    high = section.get("high_score", 3)
    if not isinstance(high, int) or isinstance(high, bool) or not 2 <= high <= 5:
        raise ValueError("[rfm] high_score must be 2, 3, 4 or 5")
    return RfmConfig(
        window_days=window,
        scoring=scoring,
        small_shop_customers=small,
        high_score=high,
        recency_cuts=_cuts(section, "recency_cuts", RfmConfig.recency_cuts),
        frequency_cuts=_cuts(section, "frequency_cuts", RfmConfig.frequency_cuts),
        monetary_cuts_fen=_cuts(section, "monetary_cuts_yuan", RfmConfig.monetary_cuts_fen, scale=100),
    )


def load_segments_toml(path: Path = CONFIG_FILE) -> dict[str, Any]:
    """config/segments.toml as a dict ({} when the file is absent)."""
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from None


def method_for(config: RfmConfig, customers_with_orders: int) -> str:
    """The method that scores today: ``quintiles`` or ``cuts`` — ``auto`` decides by how many customers have
    counted orders in the window (the same count the scoring ranks among)."""
    if config.scoring != "auto":
        return config.scoring
    return "cuts" if customers_with_orders < config.small_shop_customers else "quintiles"


def resolved(config: RfmConfig, customers_with_orders: int) -> RfmConfig:
    """``config`` with ``scoring`` set to the method :func:`method_for` chooses."""
    return replace(config, scoring=method_for(config, customers_with_orders))


def window_start(now: dt.datetime, config: RfmConfig) -> dt.datetime:
    """Orders confirmed at or after this instant count."""
    return now - dt.timedelta(days=config.window_days)


# ---- scoring ----------------------------------------------------------------------------------------------
def day_of(when: dt.datetime) -> int:
    """The business day (Asia/Shanghai date) of an instant, as days since 1970-01-01."""
    return (math.floor(when.timestamp()) + LOCAL_OFFSET_SECONDS) // DAY_SECONDS


def day_start(day: int) -> dt.datetime:
    """The first instant (UTC) of business day ``day`` (as numbered by :func:`day_of`)."""
    return dt.datetime.fromtimestamp(day * DAY_SECONDS - LOCAL_OFFSET_SECONDS, dt.UTC)


def recency_days(now: dt.datetime, last_order_at: dt.datetime) -> int:
    """Business days (Asia/Shanghai dates) from the last order to ``now``: ordered yesterday → 1; never negative."""
    return max(0, day_of(now) - day_of(last_order_at))


def quintile_scores(values: Sequence[float], *, higher_is_better: bool = True) -> list[int]:
    """Score each value 1–5 by its rank among ``values``: ``1 + ⌊5·(rank − 1) / n⌋`` where rank counts the values
    that are worse (equal values share a rank, hence a score). For recency pass ``higher_is_better=False``."""
    n = len(values)
    ordered = sorted(values) if higher_is_better else sorted(-v for v in values)
    scores = []
    for v in values:
        key = v if higher_is_better else -v
        rank = bisect.bisect_left(ordered, key) + 1
        scores.append(1 + (5 * (rank - 1)) // n)
    return scores


def quintile_of(worse: int, n: int) -> int:
    """The quintile score of a value that ``worse`` of ``n`` values are worse than (the rule above, one value)."""
    return 1 + (5 * worse) // n


def quintile_positions(n: int) -> tuple[int, ...]:
    """The 1-based positions, in ascending order of goodness, of the four quintile cut points among ``n`` values:
    ``j_k = ⌈k·n/5⌉``. Exact integers (no float percentiles)."""
    return tuple((k * n + 4) // 5 for k in range(1, 5))


def quintile_cuts(values: Sequence[float]) -> tuple[float, ...]:
    """The four cut points that reproduce :func:`quintile_scores` (higher is better) through :func:`score_by_cuts`:
    the value at each of :func:`quintile_positions` in ascending order. Why: a value scores ≥ k+1 iff at least
    ``j_k`` values are below it, iff it is above the ``j_k``-th smallest value — ties included, so the nightly
    ranks nobody: it finds four order statistics per axis and scores with comparisons."""
    ordered = sorted(values)
    return tuple(ordered[j - 1] for j in quintile_positions(len(ordered)))


def quintiles_as_cuts(
    config: RfmConfig, now: dt.datetime, last_order_cut: Sequence[dt.datetime], frequency_cut: Sequence[int], monetary_cut: Sequence[int]
) -> RfmConfig:
    """``config`` turned into the ``cuts`` config that gives every customer the quintile score: the arguments are
    :func:`quintile_cuts` of each axis over the customers scored (last order instants ascending, so recency's cut
    is on business days: a customer scores above the k-th cut when their last order's day is later than its day —
    as recency days, when they are at most ``today − day − 1``)."""
    today = day_of(now)
    recency = sorted(today - min(day_of(at), today) - 1 for at in last_order_cut)
    return replace(
        config, scoring="cuts", recency_cuts=tuple(recency), frequency_cuts=tuple(frequency_cut), monetary_cuts_fen=tuple(monetary_cut)
    )


def score_by_cuts(value: float, cuts: Sequence[float], *, higher_is_better: bool = True) -> int:
    """Score by four ascending cut points. Higher is better (F, M): ≤ cuts[0] → 1 … > cuts[3] → 5.
    Lower is better (recency days): ≤ cuts[0] → 5 … > cuts[3] → 1."""
    below = sum(1 for c in cuts if value > c)  # how many cut points the value is above
    return 1 + below if higher_is_better else 5 - below


def segment_of(r: int, f: int, m: int, high_score: int = 3) -> str:
    """The classic segment of three scores: each is high (↑) at ``high_score`` or above."""
    return SEGMENTS[(r >= high_score, f >= high_score, m >= high_score)]
