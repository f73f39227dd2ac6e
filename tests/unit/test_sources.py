"""The failure budget per peer address (mutls.server.sources): a leaky bucket per address
(IPv6 by /64), bounded in addresses and in connections held, trusted proxies exempt."""

from __future__ import annotations

import asyncio

import pytest

from mutls.apps.peers import TrustedPeers
from mutls.server.sources import SourceBudget, source_key


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeTransport:
    def __init__(self) -> None:
        self.paused = self.aborted = False

    def pause_reading(self) -> None:
        self.paused = True

    def abort(self) -> None:
        self.aborted = True


def test_source_keys() -> None:
    assert source_key("192.0.2.7") == "192.0.2.7"
    assert source_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_key("2001:db8:1:2:aaaa::1") == source_key("2001:db8:1:2:bbbb::2")
    assert source_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:3::1") != source_key("2001:db8:1:2::1")
    assert source_key("fe80::1%eth0") == "fe80::/64"
    assert source_key("not an address") == "not an address"


def test_over_budget_then_drains_back() -> None:
    clock = Clock()
    budget = SourceBudget(4, window=10.0, clock=clock)  # drains 0.4 failures a second
    attacker, other = ("192.0.2.1", 5000), ("192.0.2.2", 5000)
    for _ in range(4):
        budget.failed(attacker)
    assert not budget.over(attacker)  # 4 failures: the budget, not over it
    budget.failed(("192.0.2.1", 6000))  # another port, the same address
    assert budget.over(attacker) and not budget.over(other)
    clock.now += 3.0  # 1.2 drained: 3.8 left, under 4
    assert not budget.over(attacker)
    budget.failed(attacker)
    assert budget.over(attacker)
    clock.now += 1000.0
    assert not budget.over(attacker)
    budget.failed(attacker)  # a drained bucket starts from empty, not below
    assert not budget.over(attacker)


def test_addresses_remembered_are_bounded() -> None:
    budget = SourceBudget(1, max_sources=3, clock=Clock())
    for n in range(10):
        budget.failed((f"192.0.2.{n}", 1))
        budget.failed((f"192.0.2.{n}", 1))
    assert len(budget._sources) == 3
    assert budget.over(("192.0.2.9", 1)) and not budget.over(("192.0.2.0", 1))


def test_trusted_proxies_are_exempt() -> None:
    budget = SourceBudget(1, TrustedPeers.parse(["10.0.0.0/8"]), clock=Clock())
    budget.failed(("10.1.2.3", 1))
    budget.failed(("10.1.2.3", 1))
    assert not budget.over(("10.1.2.3", 1))
    budget.failed(("192.0.2.1", 1))
    budget.failed(("192.0.2.1", 1))
    assert budget.over(("192.0.2.1", 1))


def test_budget_zero_is_no_object() -> None:
    with pytest.raises(ValueError):
        SourceBudget(0)


def test_held_unread_then_closed_within_caps() -> None:
    async def scenario() -> None:
        budget = SourceBudget(1, hold=0.05, max_held_per_source=2, max_held=3)
        for host in ("192.0.2.1", "192.0.2.2"):
            budget.failed((host, 1))
            budget.failed((host, 1))
        first = [FakeTransport() for _ in range(3)]
        for transport in first:
            budget.hold(transport, ("192.0.2.1", 2))  # type: ignore[arg-type]
        # two held, unread; the third is past the per-address cap: closed at once
        assert [t.paused for t in first] == [True, True, False]
        assert [t.aborted for t in first] == [False, False, True]
        second = [FakeTransport() for _ in range(2)]
        for transport in second:
            budget.hold(transport, ("192.0.2.2", 2))  # type: ignore[arg-type]
        assert [t.aborted for t in second] == [False, True]  # past the cap in all
        assert (budget.held_total, budget.dropped_total) == (3, 2)
        await asyncio.sleep(0.2)
        assert all(t.aborted for t in first + second)  # each closed after the hold
        late = FakeTransport()
        budget.hold(late, ("192.0.2.1", 3))  # type: ignore[arg-type]
        assert late.paused and not late.aborted  # the holds were given back
        budget.close()
        assert late.aborted

    asyncio.run(scenario())
