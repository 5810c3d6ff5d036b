"""Step configuration: the one parser for retry and timeout settings.

Workflow code passes Cloudflare's shape, ``{"retries": {"limit": 3, "delay": "5 seconds",
"backoff": "linear"}, "timeout": "30 seconds"}``; the engine, the API and the CLI all read it
through :func:`parse_step_config`, which fills the spec's defaults and rejects unknown keys.
``retries.delay`` may also be a function ``(ctx, error)``, sync or async, that gives the base
delay after each failed attempt (a dynamic delay, §2.4); the log shows it as ``"[dynamic]"``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from stepline.durations import MAX_WAIT_MS, parse_duration_ms
from stepline.errors import InvalidDuration, InvalidStepConfig

__all__ = [
    "DEFAULT_STEP_CONFIG",
    "Backoff",
    "RetryConfig",
    "StepConfig",
    "config_text",
    "parse_step_config",
]

Backoff = Literal["constant", "linear", "exponential"]
_BACKOFFS = ("constant", "linear", "exponential")
MAX_RETRY_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """How a failed step attempt is retried."""

    limit: int = 5
    """Retries after the first attempt: ``limit + 1`` attempts in all (0 to 10,000)."""
    delay_ms: int = 10_000
    """The base delay before a retry, in milliseconds."""
    backoff: Backoff = "exponential"
    """constant: delay; linear: delay × n; exponential: delay × 2^(n−1), n the failed attempt;
    each wait at most 365 days (the longest sleep), however far the doubling goes."""
    delay_fn: Callable[..., Any] | None = None
    """A dynamic delay, called as ``delay_fn(ctx, error)`` after a failed attempt for the base
    delay (then ``backoff`` applies); ``delay_ms`` is unused with it."""

    def _validate(self) -> None:
        if not 0 <= self.limit <= MAX_RETRY_LIMIT:
            raise InvalidStepConfig(f"retries.limit must be 0 to {MAX_RETRY_LIMIT}")
        if self.backoff not in _BACKOFFS:
            raise InvalidStepConfig(f"retries.backoff must be one of {', '.join(_BACKOFFS)}")

    def delay_after(self, attempt: int, base_ms: int | None = None) -> int:
        """Milliseconds to wait after failed attempt number ``attempt`` (1-based), from the
        base delay: ``base_ms`` (a delay function's answer) or ``delay_ms``."""
        base = self.delay_ms if base_ms is None else base_ms
        if self.backoff == "constant":
            delay = base
        elif self.backoff == "linear":
            delay = base * attempt
        else:  # past 2^64 any base of one millisecond or more is over the cap
            delay = base * 2 ** min(attempt - 1, 64)
        return min(delay, MAX_WAIT_MS)


@dataclass(frozen=True, slots=True)
class StepConfig:
    """The resolved configuration of one ``step.do``."""

    retries: RetryConfig = field(default_factory=RetryConfig)
    """Retry policy; the default is 5 retries, 10 s, exponential."""
    timeout_ms: int = 600_000
    """The limit of one attempt, in milliseconds (default 10 minutes)."""
    sensitive_output: bool = False
    """When true, the step's output is shown as ``"[REDACTED]"`` in the API."""

    def _validate(self) -> None:
        self.retries._validate()
        if self.timeout_ms <= 0:
            raise InvalidStepConfig("timeout must be greater than zero")

    def to_json(self, *, for_step: bool = False) -> dict[str, Any]:
        """The step log's ``config`` shape (spec §1.3), a dynamic delay as ``"[dynamic]"``;
        ``for_step``: the shape a step's ``ctx.config`` gets, which leaves a dynamic delay
        out. A fresh dict each call."""
        retries: dict[str, Any] = {"limit": self.retries.limit}
        if self.retries.delay_fn is None:
            retries["delay"] = self.retries.delay_ms
        elif not for_step:
            retries["delay"] = "[dynamic]"
        retries["backoff"] = self.retries.backoff
        out: dict[str, Any] = {"retries": retries, "timeout": self.timeout_ms}
        if self.sensitive_output:
            out["sensitive"] = "output"
        return out


DEFAULT_STEP_CONFIG = StepConfig()


def config_text(config: StepConfig) -> str:
    """``config.to_json()`` serialised, computed once per distinct config (the hot path; the
    default config, the commonest, skips even the cache's hashing)."""
    if config is DEFAULT_STEP_CONFIG:
        return _DEFAULT_TEXT
    if config.retries.delay_fn is not None:  # a function per run: no cache to hold them all
        return json.dumps(config.to_json(), separators=(",", ":"))
    return _config_text(config)


@functools.lru_cache(maxsize=1024)
def _config_text(config: StepConfig) -> str:
    return json.dumps(config.to_json(), separators=(",", ":"))


_DEFAULT_TEXT = _config_text(DEFAULT_STEP_CONFIG)


def parse_step_config(raw: Mapping[str, Any] | StepConfig | None, *, step: str = "") -> StepConfig:
    """Validate a Cloudflare-shaped config mapping and fill in the defaults.

    Every error reads ``Step config for "<step>" is in a invalid format: <why>``.

    >>> parse_step_config({"retries": {"limit": 1, "delay": "1 second"}}).retries.delay_ms
    1000
    """
    try:
        return _parse(raw)
    except (InvalidStepConfig, InvalidDuration) as exc:
        where = f' for "{step}"' if step else ""
        raise InvalidStepConfig(
            f"Step config{where} is in a invalid format: {exc.detail}"
        ) from None


def _parse(raw: Mapping[str, Any] | StepConfig | None) -> StepConfig:
    if raw is None:
        return DEFAULT_STEP_CONFIG
    if isinstance(raw, StepConfig):
        raw._validate()
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidStepConfig("expected a mapping")
    unknown = set(raw) - {"retries", "timeout", "sensitive"}
    if unknown:
        raise InvalidStepConfig(f"unknown key(s) {_listed(unknown)}")
    retries = _parse_retries(raw.get("retries"))
    timeout_ms = (
        DEFAULT_STEP_CONFIG.timeout_ms
        if raw.get("timeout") is None
        else parse_duration_ms(raw["timeout"], what="timeout")
    )
    sensitive = raw.get("sensitive")
    if sensitive not in (None, "output"):
        raise InvalidStepConfig('sensitive must be "output"')
    config = StepConfig(
        retries=retries, timeout_ms=timeout_ms, sensitive_output=sensitive == "output"
    )
    config._validate()
    return config


def _parse_retries(raw: object) -> RetryConfig:
    if raw is None:
        return DEFAULT_STEP_CONFIG.retries
    if not isinstance(raw, Mapping):
        raise InvalidStepConfig("retries must be a mapping")
    unknown = set(raw) - {"limit", "delay", "backoff"}
    if unknown:
        raise InvalidStepConfig(f"unknown retries key(s) {_listed(unknown)}")
    limit = raw.get("limit", DEFAULT_STEP_CONFIG.retries.limit)
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int | float)
        or (isinstance(limit, float) and not limit.is_integer())  # 1.5, inf and nan
    ):
        raise InvalidStepConfig("retries.limit must be a whole number")
    delay = raw.get("delay")
    delay_fn = delay if callable(delay) else None
    delay_ms = (
        DEFAULT_STEP_CONFIG.retries.delay_ms
        if delay is None or delay_fn is not None
        else parse_duration_ms(delay, what="retries.delay")
    )
    backoff = raw.get("backoff", DEFAULT_STEP_CONFIG.retries.backoff)
    if backoff not in _BACKOFFS:
        raise InvalidStepConfig(f"retries.backoff must be one of {', '.join(_BACKOFFS)}")
    return RetryConfig(limit=int(limit), delay_ms=delay_ms, backoff=backoff, delay_fn=delay_fn)


def _listed(keys: Iterable[object]) -> str:
    """Unknown keys as a config error names them, in order: a key that is no string (``{1:
    ...}``) as its ``repr``, so that it is refused as the others are, not a ``TypeError``."""
    return ", ".join(sorted(k if isinstance(k, str) else repr(k) for k in keys))
