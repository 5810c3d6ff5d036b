"""The engine's own signals, raised into a run's ``run()`` to end or unwind it.

They derive from ``BaseException`` so that an ``except Exception`` in workflow code does not
swallow them: :class:`Suspended` unwinds a parked run, :class:`StoreLost` abandons one whose
store or lease is gone, :class:`FatalInstanceError` fails the instance at once.
"""

from __future__ import annotations

from stepline.validation import storable_text

__all__ = ["FatalInstanceError", "StoreLost", "Suspended"]


class Suspended(BaseException):
    """Unwinds ``run`` once the instance is parked; user code must not catch it."""


class StoreLost(BaseException):
    """The store cannot be reached, or the engine's lease on the instance may have lapsed:
    abandon the run, keep the instance as it is recorded. Its lease lapses and an engine
    replays it from the step cache (once the store is back)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class FatalInstanceError(BaseException):
    """Fails the instance at once, past any ``try`` in user code (limits, bad results). Its
    message is kept as the instance's error, and may quote workflow code (a step config's
    unknown key): it is made storable here, once for every store."""

    def __init__(self, message: str, name: str = "WorkflowFatalError") -> None:
        message = storable_text(message)
        super().__init__(message)
        self.name = name
        self.message = message
