"""The jti replay cache: bounded, and entries leave when their token expires."""

from __future__ import annotations

from cds.security.replay import JtiReplayCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_jti_is_accepted_once_per_issuer() -> None:
    cache = JtiReplayCache(clock=Clock())
    assert cache.first_use("iss-a", "j1", 2000)
    assert not cache.first_use("iss-a", "j1", 2000)
    assert cache.first_use("iss-b", "j1", 2000)  # another issuer's namespace


def test_entries_expire_with_their_token() -> None:
    clock = Clock()
    cache = JtiReplayCache(clock=clock)
    cache.first_use("iss", "j1", 1100)
    clock.now = 1101
    assert cache.first_use("iss", "other", 1200)
    assert len(cache) == 1  # j1 was dropped
    assert cache.first_use("iss", "j1", 1200)  # an expired token is refused by exp anyway


def test_full_cache_forgets_the_entry_closest_to_expiry() -> None:
    cache = JtiReplayCache(capacity=3, clock=Clock())
    for jti, exp in (("late", 5000), ("soon", 1500), ("mid", 3000)):
        assert cache.first_use("iss", jti, exp)
    assert cache.first_use("iss", "new", 4000)
    assert len(cache) == 3
    assert cache.first_use("iss", "soon", 1500)  # forgotten: shortest replay window reopened
    assert not cache.first_use("iss", "late", 5000)
