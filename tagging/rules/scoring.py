"""Score decay and the apply/remove decision. Pure maths on plain values.

A rule's score on a customer is a sum of message scores, each halving every ``half_life_days``:
``score(t) = Σ sᵢ × 0.5^((t − tᵢ) / half_life)``. It is stored as one number stated at one instant
(:class:`Score`), which is enough: decaying the sum is the sum of the decayed terms. Thresholds have hysteresis —
a tag goes on at ``threshold`` and comes off only below ``remove_threshold`` — so a score hovering near one
value does not flap.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from enum import StrEnum

DAY_SECONDS = 86_400.0


@dataclass(frozen=True)
class Score:
    value: float
    at: dt.datetime  # the instant ``value`` is stated at


class Action(StrEnum):
    APPLY = "apply"  # not on the customer, and the score reached the threshold
    REMOVE = "remove"  # on the customer (put there by the rule), and the score fell below remove_threshold
    KEEP = "keep"  # nothing to change


def decay(value: float, since: dt.datetime, until: dt.datetime, half_life_days: float) -> float:
    """``value`` stated at ``since``, as of ``until``: ``value × 0.5^(Δdays / half_life)``. Never grows: for
    ``until`` before ``since`` the value is returned unchanged (a score is not extrapolated backwards)."""
    if half_life_days <= 0:
        raise ValueError("half_life_days must be positive")
    days = (until - since).total_seconds() / DAY_SECONDS
    if days <= 0:
        return value
    return value * 0.5 ** (days / half_life_days)


def value_at(score: Score | None, when: dt.datetime, half_life_days: float) -> float:
    """The score as of ``when`` (0 for no score)."""
    return 0.0 if score is None else decay(score.value, score.at, when, half_life_days)


def add(score: Score | None, increment: float, at: dt.datetime, half_life_days: float) -> Score:
    """``score`` plus a message scored ``increment`` at ``at``. Order-independent: a message older than the
    stored score is decayed to the score's instant before it is added, so replaying messages in any order
    gives the same result (up to rounding)."""
    if score is None:
        return Score(increment, at)
    when = max(score.at, at)
    return Score(decay(score.value, score.at, when, half_life_days) + decay(increment, at, when, half_life_days), when)


def decide(value: float, *, applied: bool, threshold: float, remove_threshold: float) -> Action:
    """Whether the tag should go on, come off, or stay as it is, for a score of ``value`` now."""
    if not applied and value >= threshold:
        return Action.APPLY
    if applied and value < remove_threshold:
        return Action.REMOVE
    return Action.KEEP


def decide_on_message(
    state: Score, now: dt.datetime, *, applied: bool, threshold: float, remove_threshold: float, half_life_days: float
) -> Action:
    """The decision after a message was added to the score (``state``, stated at the message's own time or at a
    newer message's). The tag goes on when the score *at that event* reaches ``threshold`` — not after decaying it
    to the moment the message is handled, which would make a rule with threshold = weight never fire on one hit
    (kf timestamps are whole seconds: a second's decay leaves 0.9999997 of it). A message handled so late that its
    score has already decayed below ``remove_threshold`` by now puts nothing on (the daily decay would take it off
    again at once); a tag on a customer comes off only below ``remove_threshold`` as of now."""
    current = value_at(state, max(now, state.at), half_life_days)
    if not applied:
        return Action.APPLY if state.value >= threshold and current >= remove_threshold else Action.KEEP
    return Action.REMOVE if current < remove_threshold else Action.KEEP


def days_until_below(value: float, remove_threshold: float, half_life_days: float) -> float | None:
    """Days of silence until ``value`` decays below ``remove_threshold`` (0 if it already is; None when the
    threshold is 0, which a decaying score never goes below)."""
    if value < remove_threshold:
        return 0.0
    if remove_threshold <= 0:
        return None
    return half_life_days * math.log2(value / remove_threshold)
