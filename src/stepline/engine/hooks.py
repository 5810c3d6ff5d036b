"""Points where a test harness may stand in for real work (``stepline.testing`` uses them)."""

from __future__ import annotations

from typing import Any

__all__ = ["NO_HOOKS", "StepHooks"]


class StepHooks:
    """Does nothing; ``stepline.testing.StepMocks`` overrides these."""

    def mocked_result(self, step_name: str) -> tuple[bool, Any]:
        """``(True, value)`` to complete the step ``step_name`` with ``value`` unrun."""
        return False, None

    def mocked_error(self, step_name: str) -> BaseException | None:
        """An error to raise instead of running this attempt of ``step_name``."""
        return None

    def mocked_event(self, event_type: str) -> tuple[bool, Any]:
        """``(True, payload)`` to hand a waiting ``wait_for_event`` this payload at once."""
        return False, None

    def forced_timeout(self, step_name: str) -> bool:
        """True to make the ``wait_for_event`` named ``step_name`` time out at once."""
        return False


NO_HOOKS = StepHooks()
