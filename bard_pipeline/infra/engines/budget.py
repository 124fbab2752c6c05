"""The hard query budget of a stage: calls and dollars, shared by every engine replica.

A call is reserved *before* it is sent, at its worst-case cost (prompt characters as an upper bound of
prompt tokens, plus ``max_tokens`` completion tokens per sample), and settled with the real cost after
the response. So the configured limits are never exceeded, even with many replicas in flight.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol


class QueryBudget(Protocol):
    def reserve(self, calls: int, usd: float) -> bool: ...

    def settle(self, reserved_usd: float, actual_usd: float) -> None: ...


class BudgetLedger:
    """The accounting itself; thread-safe. Used in-process, or inside a Ray actor shared by replicas."""

    def __init__(self, max_calls: int | None, max_usd: float | None, spent_calls: int = 0, spent_usd: float = 0.0):
        self.max_calls, self.max_usd = max_calls, max_usd
        self.calls, self.usd = spent_calls, spent_usd
        self._lock = threading.Lock()

    def reserve(self, calls: int, usd: float) -> bool:
        with self._lock:
            if self.max_calls is not None and self.calls + calls > self.max_calls:
                return False
            if self.max_usd is not None and self.usd + usd > self.max_usd:
                return False
            self.calls += calls
            self.usd += usd
            return True

    def settle(self, reserved_usd: float, actual_usd: float) -> None:
        with self._lock:
            self.usd += actual_usd - reserved_usd

    def spent(self) -> tuple[int, float]:
        return self.calls, self.usd


class RayQueryBudget:
    """A client of the ledger actor, so that every replica of a stage draws from one budget."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    def reserve(self, calls: int, usd: float) -> bool:
        import ray

        return bool(ray.get(self._actor.reserve.remote(calls, usd)))

    def settle(self, reserved_usd: float, actual_usd: float) -> None:
        self._actor.settle.remote(reserved_usd, actual_usd)


def start_budget_actor(max_calls: int | None, max_usd: float | None, spent_calls: int, spent_usd: float) -> Any:
    """Create the ledger actor; the caller holds the handle (the actor lives as long as it) and kills it."""
    import ray

    actor_cls = ray.remote(num_cpus=0, max_concurrency=64)(BudgetLedger)
    return actor_cls.remote(max_calls, max_usd, spent_calls, spent_usd)
