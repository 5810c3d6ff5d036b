"""The ``step`` object workflow code receives: ``do``, ``sleep``, ``sleep_until``,
``wait_for_event``. It holds no state of its own beyond the steps declared in this run;
durability is the engine's, reached through the :class:`StepRuntime` protocol."""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import CodeType, FunctionType
from typing import Any, Protocol, overload

from stepline.durations import Duration, parse_duration_ms
from stepline.step_config import StepConfig

__all__ = ["StepContext", "StepFunction", "StepRuntime", "WorkflowStep"]

StepConfigInput = Mapping[str, Any] | StepConfig | None


@dataclass(frozen=True, slots=True)
class StepContext(Mapping[str, Any]):
    """What a step function learns about its attempt: ``ctx.attempt`` (1-based),
    ``ctx.step_name``, ``ctx.step_count`` and the resolved ``ctx.config``. It is also the
    read-only mapping Cloudflare's Python SDK gives a step (a dict there):
    ``ctx["step"]["name"]``, ``ctx.get("attempt")``, ``"config" in ctx``, ``dict(ctx)``."""

    step_name: str
    step_count: int
    attempt: int
    config: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self._as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(_CONTEXT_KEYS)

    def __len__(self) -> int:
        return len(_CONTEXT_KEYS)

    def _as_dict(self) -> dict[str, Any]:
        return {
            "step": {"name": self.step_name, "count": self.step_count},
            "attempt": self.attempt,
            "config": self.config,
        }


_CONTEXT_KEYS = ("step", "attempt", "config")


class StepRuntime(Protocol):
    """What the engine offers the step object; one per running instance."""

    async def run_do(
        self,
        name: str,
        call: Callable[[StepContext], Any],
        config: StepConfigInput,
        *,
        is_async: bool,
    ) -> Any: ...

    def start_step(self, work: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        """Run a declared step's ``work`` as a task of the run's own (a branch about to
        park the instance waits for such a task to start)."""
        ...

    async def sleep_for(self, name: str, duration_ms: int) -> None: ...

    async def sleep_until(self, name: str, when_ms: int) -> None: ...

    async def wait_for_event(
        self, name: str, event_type: str, timeout_ms: int
    ) -> dict[str, Any]: ...


class StepFunction:
    """A function declared with ``@step.do``. Awaiting it runs the step once per run;
    awaiting it again (or naming it as a dependency) returns the same result."""

    def __init__(
        self,
        step: WorkflowStep,
        fn: Callable[..., Any],
        name: str,
        config: StepConfigInput,
        concurrent: bool,
    ) -> None:
        self._step = step
        self._fn = fn
        self.name = name
        self._config = config
        self._concurrent = concurrent
        self._result: asyncio.Future[Any] | None = None
        parameters = inspect.signature(fn).parameters
        self._params = list(parameters)
        self._defaults = {n for n, p in parameters.items() if p.default is not p.empty}
        functools.update_wrapper(self, fn)

    def __call__(self) -> Awaitable[Any]:
        if self._result is None:
            self._result = self._step._runtime.start_step(self._execute())
        return _shield_result(self._result)

    async def _execute(self) -> Any:
        dependencies = []
        steps = []
        for param in self._params:
            if param == "ctx":
                continue
            declared = self._step._declared.get(param)
            if declared is None:
                if param in self._defaults:  # e.g. the ``k=k`` idiom in a loop
                    continue
                raise TypeError(
                    f"step {self.name!r}: parameter {param!r} is neither 'ctx' nor the name of "
                    f"a step declared earlier in this run"
                )
            dependencies.append(param)
            steps.append(declared)
        if self._concurrent:
            values = list(await asyncio.gather(*(s() for s in steps)))
        else:
            values = [await s() for s in steps]
        kwargs = dict(zip(dependencies, values, strict=True))
        wants_ctx = "ctx" in self._params
        fn = self._fn

        def call(ctx: StepContext) -> Any:
            return fn(ctx=ctx, **kwargs) if wants_ctx else fn(**kwargs)

        return await self._step._runtime.run_do(
            self.name, call, self._config, is_async=inspect.iscoroutinefunction(fn)
        )


def _call_shape(fn: Callable[..., Any]) -> tuple[bool, bool]:
    """``(takes the context, is a coroutine function)`` for a direct-call step function.

    It gets the context when it names ``ctx`` or has a required positional parameter
    (Cloudflare's ``(ctx) => ...``); ``lambda n=n: n`` gets nothing. A function defined
    inside ``run()`` is a new object on every call, but its code is not: plain functions
    are looked at once per code object. Not one with attributes: ``functools.wraps`` gives
    every function a decorator wraps the same code and each its own signature."""
    if type(fn) is not FunctionType or fn.__dict__:
        return _inspect_wants_context(fn), inspect.iscoroutinefunction(fn)
    code = fn.__code__
    shape = _CALL_SHAPES.get(code)
    if shape is None:
        if len(_CALL_SHAPES) >= _CALL_SHAPES_KEPT:  # modules reloaded again and again
            _CALL_SHAPES.clear()
        shape = _CALL_SHAPES[code] = (_inspect_wants_context(fn), inspect.iscoroutinefunction(fn))
    return shape


_CALL_SHAPES: dict[CodeType, tuple[bool, bool]] = {}
_CALL_SHAPES_KEPT = 10_000


def _inspect_wants_context(fn: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters
    except ValueError:
        # A builtin that states no signature (``time.time``, ``time.time_ns``): called
        # without the context, as it is written (``step.do("now", time.time)``).
        return False
    for param in parameters.values():
        if param.name == "ctx":
            return True
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            return param.default is param.empty
    return False


async def _shield_result(future: asyncio.Future[Any]) -> Any:
    return await future


class WorkflowStep:
    """The durable operations of one run. Created by the engine, passed to ``run``."""

    def __init__(self, runtime: StepRuntime) -> None:
        self._runtime = runtime
        self._declared: dict[str, StepFunction] = {}

    @overload
    def do(self, name: Callable[..., Any], /) -> StepFunction: ...

    @overload
    def do(
        self,
        name: str | None = None,
        *,
        config: StepConfigInput = None,
        concurrent: bool = False,
    ) -> Callable[[Callable[..., Any]], StepFunction]: ...

    @overload
    def do(
        self, name: str, fn: Callable[..., Any], *, config: StepConfigInput = None
    ) -> Awaitable[Any]: ...

    def do(
        self,
        name: str | Callable[..., Any] | None = None,
        fn: Callable[..., Any] | None = None,
        *,
        config: StepConfigInput = None,
        concurrent: bool = False,
    ) -> Any:
        """Run a durable step, as a decorator or as a direct call. ``name`` may be given by
        keyword, as Cloudflare's Python SDK takes it (``@step.do(name="charge card")``).

        >>> @step.do("charge card", config={"retries": {"limit": 3}})
        ... async def charge(ctx):
        ...     return {"id": "ch_1"}
        >>> receipt = await charge()
        >>> receipt = await step.do("charge card", charge_card, config={"timeout": "30 seconds"})
        """
        if callable(name):
            return self._declare(name, None, config, concurrent)
        if fn is not None:
            if name is None:
                raise TypeError("step.do(name, fn) needs a name")
            return self._call_direct(name, fn, config)

        return _StepDecorator(lambda func: self._declare(func, name, config, concurrent), name)

    def _declare(
        self,
        func: Callable[..., Any],
        name: str | None,
        config: StepConfigInput,
        concurrent: bool,
    ) -> StepFunction:
        # Only a missing name defaults to the function's: an empty one is refused at the call,
        # as Cloudflare's SDK passes it on to be refused.
        step_name = func.__name__ if name is None else name
        declared = StepFunction(self, func, step_name, config, concurrent)
        self._declared[func.__name__] = declared
        return declared

    def _call_direct(
        self, name: str, fn: Callable[..., Any], config: StepConfigInput
    ) -> Awaitable[Any]:
        takes_ctx, is_async = _call_shape(fn)

        def call(ctx: StepContext) -> Any:
            return fn(ctx) if takes_ctx else fn()

        # The runtime's coroutine itself: awaiting it goes through no frame of ours.
        return self._runtime.run_do(name, call, config, is_async=is_async)

    async def sleep(self, name: str, duration: Duration) -> None:
        """Pause the run for ``duration`` (ms, or a string like ``"1 day"``)."""
        await self._runtime.sleep_for(name, parse_duration_ms(duration, what="sleep duration"))

    async def sleep_until(self, name: str, when: datetime | int | float) -> None:
        """Pause the run until ``when`` (a datetime, or epoch milliseconds)."""
        if isinstance(when, datetime):
            if when.tzinfo is None:
                raise ValueError("sleep_until needs a timezone-aware datetime")
            when_ms = int(when.timestamp() * 1000)
        elif isinstance(when, int | float) and not isinstance(when, bool):
            if isinstance(when, float) and not math.isfinite(when):
                raise ValueError(
                    f"sleep_until needs a finite time in epoch milliseconds, not {when}"
                )
            when_ms = int(when)
        else:
            raise TypeError("sleep_until takes a datetime or epoch milliseconds")
        await self._runtime.sleep_until(name, when_ms)

    async def wait_for_event(
        self, name: str, event_type: str, /, timeout: Duration = "24 hours"
    ) -> dict[str, Any]:
        """Wait for an event of ``event_type`` sent to this instance; returns
        ``{"payload", "timestamp", "type"}``. Raises ``WorkflowTimeoutError`` on timeout."""
        timeout_ms = parse_duration_ms(timeout, what="wait_for_event timeout")
        return await self._runtime.wait_for_event(name, event_type, timeout_ms)


class _StepDecorator:
    """What ``step.do(name)`` gives: a decorator for the step's function. Awaited instead,
    as if it were the step, it says what is missing."""

    __slots__ = ("_declare", "_name")

    def __init__(self, declare: Callable[[Callable[..., Any]], StepFunction], name: str | None):
        self._declare = declare
        self._name = name

    def __call__(self, func: Callable[..., Any]) -> StepFunction:
        return self._declare(func)

    def __await__(self) -> Any:
        raise TypeError(
            f"step.do({self._name!r}) was awaited without a function to run: write "
            f"await step.do({self._name!r}, fn), or decorate a function with "
            f"@step.do({self._name!r}) and await its call"
        )
