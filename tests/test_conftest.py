"""tests/conftest.py: the suite's own isolation under pytest-xdist: each worker a Redis DB of its own, derived from
``SCRM_TEST_REDIS``, never the user's DB 0 nor the benchmarks' DB 14."""

from __future__ import annotations

import pytest

from tests.conftest import redis_url_for_worker


def test_outside_xdist_the_url_is_used_as_given() -> None:
    assert redis_url_for_worker("redis://127.0.0.1:6379/13", "") == "redis://127.0.0.1:6379/13"
    assert redis_url_for_worker("redis://127.0.0.1:6379/13", "master") == "redis://127.0.0.1:6379/13"


def test_each_worker_counts_down_from_the_given_db() -> None:
    assert redis_url_for_worker("redis://127.0.0.1:6379/13", "gw0") == "redis://127.0.0.1:6379/13"
    assert redis_url_for_worker("redis://127.0.0.1:6379/13", "gw1") == "redis://127.0.0.1:6379/12"
    assert redis_url_for_worker("redis://:secret@10.0.0.5:6380/11", "gw1") == "redis://:secret@10.0.0.5:6380/10"


@pytest.mark.parametrize(
    ("base", "worker"), [("redis://127.0.0.1:6379/1", "gw1"), ("redis://127.0.0.1:6379/15", "gw1"), ("redis://h/0", "gw0")]
)
def test_never_the_users_db_0_nor_the_benchmarks_14(base: str, worker: str) -> None:
    with pytest.raises(pytest.UsageError, match="Redis DB"):
        redis_url_for_worker(base, worker)
