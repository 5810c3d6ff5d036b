"""Stand-ins for step results, step errors and events, in the spirit of Cloudflare's
workflow test introspection (``mockStepResult``, ``mockStepError``, ``mockEvent``…)."""

from __future__ import annotations

from typing import Any

from stepline.engine.hooks import StepHooks

__all__ = ["StepMocks"]


class StepMocks(StepHooks):
    """Pass to ``Stepline(hooks=...)``; then declare what each step should do.

    >>> mocks = StepMocks()
    >>> mocks.mock_step_result("charge card", {"charge_id": "test"})
    >>> mocks.mock_step_error("call api", ConnectionError("down"), times=2)
    >>> mocks.mock_event("approved", {"user": "ada"})
    >>> mocks.force_event_timeout("approval")
    """

    def __init__(self) -> None:
        self._results: dict[str, Any] = {}
        self._errors: dict[str, tuple[BaseException, int | None]] = {}
        self._events: dict[str, Any] = {}
        self._timeouts: set[str] = set()

    def mock_step_result(self, step_name: str, value: Any) -> None:
        """Complete every ``step.do(step_name)`` with ``value`` without running it."""
        self._results[step_name] = value

    def mock_step_error(
        self, step_name: str, error: BaseException, *, times: int | None = None
    ) -> None:
        """Fail the next ``times`` attempts of ``step_name`` with ``error`` (all, if None)."""
        self._errors[step_name] = (error, times)

    def mock_event(self, event_type: str, payload: Any) -> None:
        """Hand every ``wait_for_event`` of ``event_type`` this payload at once."""
        self._events[event_type] = payload

    def force_event_timeout(self, step_name: str) -> None:
        """Make the ``wait_for_event`` named ``step_name`` time out at once."""
        self._timeouts.add(step_name)

    def mocked_result(self, step_name: str) -> tuple[bool, Any]:
        if step_name in self._results:
            return True, self._results[step_name]
        return False, None

    def mocked_error(self, step_name: str) -> BaseException | None:
        entry = self._errors.get(step_name)
        if entry is None:
            return None
        error, times = entry
        if times is not None:
            if times <= 0:
                return None
            self._errors[step_name] = (error, times - 1)
        return error

    def mocked_event(self, event_type: str) -> tuple[bool, Any]:
        if event_type in self._events:
            return True, self._events[event_type]
        return False, None

    def forced_timeout(self, step_name: str) -> bool:
        return step_name in self._timeouts
