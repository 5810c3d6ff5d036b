"""What a test's workflows report back: a probe passed as the Stepline ``env``.

Workflow code calls ``self.env.hit("charge")`` to count a step's executions, and awaits
``self.env.gate("release")`` to block until the test opens it.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from typing import Any


class Probe:
    """Counters, recorded values and gates, private to one test. Call ``hit`` from the
    event loop (async steps or run()); sync steps run in threads and may only count."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seen: defaultdict[str, list[Any]] = defaultdict(list)
        self.timeline: list[str] = []
        self._gates: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Event()

    def hit(self, name: str, value: Any = None) -> int:
        """Count one execution of ``name`` and remember ``value``; returns the new count."""
        self.calls[name] += 1
        self.seen[name].append(value)
        self.timeline.append(name)
        self._changed.set()
        return self.calls[name]

    def gate(self, name: str) -> asyncio.Event:
        return self._gates.setdefault(name, asyncio.Event())

    async def wait_for(self, name: str, count: int = 1, timeout: float = 5.0) -> None:
        """Until ``name`` has been hit ``count`` times."""
        async with asyncio.timeout(timeout):
            while self.calls[name] < count:
                self._changed.clear()
                await self._changed.wait()
