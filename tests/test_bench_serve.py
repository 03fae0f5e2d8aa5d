"""bench_serve's reading of serve's own-time histogram (pure: two /metrics scrapes)."""

import math

from benchmarks.bench_serve import own_quantile

BOUNDS = (0.0005, 0.001, 0.002, float("inf"))


def scrape(*cumulative):
    return list(zip(BOUNDS, map(float, cumulative)))


def test_quantiles_count_only_the_inserts_between_the_two_scrapes():
    # 60 inserts under 0.5 ms before; then 100: 40 under 0.5 ms, 58 more under 1 ms, 2 under 2 ms
    before, after = scrape(60, 60, 60, 60), scrape(100, 158, 160, 160)
    assert own_quantile(before, after, 0.5) == 1.0  # the 50th of the 100 is in (0.5, 1] ms (of all 160: 0.5)
    assert own_quantile(before, after, 0.98) == 1.0
    assert own_quantile(before, after, 0.99) == 2.0
    assert own_quantile(before, after, 0.4) == 0.5


def test_no_insert_between_the_scrapes_has_no_quantile():
    assert math.isnan(own_quantile(scrape(3, 3, 3, 3), scrape(3, 3, 3, 3), 0.5))
