"""Failed admin logins per client address (pure, on an injected clock)."""

from __future__ import annotations

import pytest

from dupcheck_plugin.server.admin.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_a_minute_then_refused_until_the_oldest_is_a_minute_old():
    clock = Clock()
    throttle = LoginThrottle(limit=5, window=60, clock=clock)
    for i in range(5):
        assert throttle.retry_after("10.0.0.1") is None
        throttle.failed("10.0.0.1")
        clock.now += 10  # failures at 1000, 1010, ..., 1040
    assert clock.now == 1050
    assert throttle.retry_after("10.0.0.1") == 10  # the failure at 1000 leaves the window at 1060
    assert throttle.retry_after("10.0.0.2") is None  # per address
    clock.now = 1059.5
    assert throttle.retry_after("10.0.0.1") == 1  # never 0: a client told to wait waits
    clock.now = 1060
    assert throttle.retry_after("10.0.0.1") is None  # four failures in the window: one more try
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 10  # 1010 + 60 - 1060


def test_a_good_login_clears_the_count_and_idle_addresses_are_forgotten():
    clock = Clock()
    throttle = LoginThrottle(limit=2, window=60, clock=clock, max_clients=2)
    throttle.failed("a")
    throttle.succeeded("a")
    throttle.failed("a")
    assert throttle.retry_after("a") is None
    throttle.failed("a")
    assert throttle.retry_after("a") == 60
    clock.now += 61
    assert throttle.retry_after("a") is None  # a minute after its last failure


def test_memory_is_bounded_the_least_recently_seen_address_goes_first():
    throttle = LoginThrottle(limit=1, window=60, clock=Clock(), max_clients=2)
    for client in ("a", "b", "c"):
        throttle.failed(client)
    assert (throttle.retry_after("a"), throttle.retry_after("b"), throttle.retry_after("c")) == (None, 60, 60)


def test_nonsense_settings_are_refused():
    with pytest.raises(ValueError):
        LoginThrottle(limit=0)
    with pytest.raises(ValueError):
        LoginThrottle(window=0)
