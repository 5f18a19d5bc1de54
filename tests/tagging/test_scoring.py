"""Decay maths and the apply/remove decision, on plain values."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from tagging.rules.scoring import Action, Score, add, days_until_below, decay, decide, decide_on_message, value_at

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def days(n: float) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


def test_the_score_halves_every_half_life() -> None:
    assert decay(4.0, T0, days(0), 14) == 4.0
    assert decay(4.0, T0, days(14), 14) == pytest.approx(2.0)
    assert decay(4.0, T0, days(42), 14) == pytest.approx(0.5)
    assert decay(4.0, T0, days(7), 14) == pytest.approx(4.0 / 2**0.5)
    assert decay(4.0, days(5), T0, 14) == 4.0  # never extrapolated backwards
    with pytest.raises(ValueError):
        decay(1.0, T0, days(1), 0)


def test_adding_messages_is_order_independent() -> None:
    messages = [(1.0, days(0)), (2.0, days(10)), (1.0, days(3)), (3.0, days(30))]
    results = set()
    for order in itertools.permutations(messages):
        score: Score | None = None
        for inc, at in order:
            score = add(score, inc, at, 14)
        assert score is not None and score.at == days(30)
        results.add(round(value_at(score, days(40), 14), 9))
    expected = sum(inc * 0.5 ** ((40 - (at - T0).days) / 14) for inc, at in messages)
    assert results == {round(expected, 9)}


def test_value_of_no_score_is_zero() -> None:
    assert value_at(None, T0, 30) == 0.0
    assert value_at(Score(2.0, T0), days(30), 30) == pytest.approx(1.0)


def test_decisions_have_hysteresis() -> None:
    rule = {"threshold": 2.0, "remove_threshold": 1.0}
    assert decide(2.0, applied=False, **rule) is Action.APPLY
    assert decide(1.99, applied=False, **rule) is Action.KEEP
    assert decide(1.5, applied=True, **rule) is Action.KEEP  # between the two: a tag on stays on
    assert decide(0.99, applied=True, **rule) is Action.REMOVE
    assert decide(0.5, applied=False, **rule) is Action.KEEP
    assert decide(5.0, applied=True, **rule) is Action.KEEP


def test_days_until_the_tag_comes_off() -> None:
    assert days_until_below(4.0, 1.0, 14) == pytest.approx(28.0)
    assert days_until_below(0.5, 1.0, 14) == 0.0
    assert days_until_below(3.0, 0.0, 14) is None
    left = days_until_below(3.0, 1.0, 10)
    assert left is not None and decay(3.0, T0, T0 + dt.timedelta(days=left + 0.01), 10) < 1.0


def test_one_hit_at_exactly_the_threshold_applies_when_handled_a_second_later() -> None:
    """kf timestamps are whole seconds: a message handled 0.4 s after its time decays to 0.99999998 of its score.
    The threshold is tested at the event's own time, so threshold = weight fires on one hit."""
    state = add(None, 2.0, T0, 30)
    later = T0 + dt.timedelta(seconds=1, milliseconds=400)
    assert value_at(state, later, 30) < 2.0  # what the old test compared: never reaches 2.0
    assert decide_on_message(state, later, applied=False, threshold=2.0, remove_threshold=1.0, half_life_days=30) is Action.APPLY
    assert decide_on_message(state, later, applied=False, threshold=2.0000001, remove_threshold=1.0, half_life_days=30) is Action.KEEP


def test_a_message_replayed_after_its_score_decayed_away_applies_nothing() -> None:
    state = add(None, 3.0, T0, 14)
    assert decide_on_message(state, days(60), applied=False, threshold=2.0, remove_threshold=1.0, half_life_days=14) is Action.KEEP
    assert decide_on_message(state, days(60), applied=True, threshold=2.0, remove_threshold=1.0, half_life_days=14) is Action.REMOVE
    assert decide_on_message(state, days(10), applied=True, threshold=2.0, remove_threshold=1.0, half_life_days=14) is Action.KEEP
