"""The heap is trimmed once a burst of connections is over, not while traffic is steady."""

from __future__ import annotations

from mutls.server.memory import MemoryTrimmer, malloc_trim


def test_trims_after_a_drop_from_the_peak_and_not_more_often_than_allowed() -> None:
    count = [0]
    calls: list[int] = []
    trimmer = MemoryTrimmer(lambda: count[0], lambda: calls.append(1), min_drop=64)
    for value, now in [(10, 0.0), (400, 1.0), (390, 2.0)]:
        count[0] = value
        assert not trimmer.tick(now)  # rising, or a small dip: nothing to give back
    count[0] = 100
    assert trimmer.tick(3.0) and calls == [1]
    count[0] = 0
    assert not trimmer.tick(4.0)  # another drop of 100, but only a second later
    assert trimmer.tick(9.0) and trimmer.trims == 2


def test_steady_traffic_never_trims() -> None:
    calls: list[int] = []
    trimmer = MemoryTrimmer(lambda: 50, lambda: calls.append(1))
    assert not any(trimmer.tick(float(t)) for t in range(100))
    assert calls == []


def test_glibc_trim_can_be_called() -> None:
    trim = malloc_trim()
    if trim is not None:  # glibc (the Linux this project runs on); elsewhere a no-op
        assert trim() in (0, 1)


def test_growth_without_a_peak_trims_once_per_growth() -> None:
    # A flood of short connections one at a time: the count never drops from a peak, the
    # resident size grows; one trim per MIN_GROWTH, none while it stays where the trim left it.
    resident = [40 << 20]
    trims: list[int] = []
    trimmer = MemoryTrimmer(
        lambda: 1,
        lambda: trims.append(1),
        min_interval=0,
        resident=lambda: resident[0],
        min_growth=4 << 20,
    )
    assert not trimmer.tick(now=1)
    resident[0] += 5 << 20
    assert trimmer.tick(now=2) and len(trims) == 1
    assert not trimmer.tick(now=3)  # nothing was returned: the same size is not a growth
    resident[0] += 4 << 20
    assert trimmer.tick(now=4) and len(trims) == 2
