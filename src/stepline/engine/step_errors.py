"""Step failures: which stop retries, what they are called, and how a cached one is raised
again, as the same class with the same message, when a run is replayed."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from stepline.errors import NonRetryableError, StepFailedError
from stepline.store.records import StepRecord
from stepline.validation import storable_text

__all__ = ["class_path", "error_message", "error_name", "is_non_retryable", "rebuild_error"]

log = logging.getLogger("stepline.engine")


def is_non_retryable(exc: BaseException) -> bool:
    return (
        isinstance(exc, NonRetryableError)
        or type(exc).__name__ == "NonRetryableError"
        or str(exc).startswith("NonRetryableError")
    )


_NAMED_FOR_WHAT_IS_MISSING = (AttributeError, ImportError, NameError)
"""Built-in errors whose ``name`` is the attribute, module or variable they are about."""


def error_name(exc: BaseException) -> str:
    """The error's ``name``, as a JavaScript error's (an error may set its own), or else its
    class's name."""
    name = None if isinstance(exc, _NAMED_FOR_WHAT_IS_MISSING) else getattr(exc, "name", None)
    return storable_text(name if isinstance(name, str) and name else type(exc).__name__)


def error_message(exc: BaseException) -> str:
    """``str(exc)``, in a form every store can keep."""
    return storable_text(str(exc))


def class_path(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}:{cls.__qualname__}"


def rebuild_error(record: StepRecord) -> Exception:
    """The cached failure of a step, as the same class with the same message when possible."""
    message = record.error_message or ""
    name = record.error_name or "Error"
    if record.error_class:
        module_name, _, qualname = record.error_class.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
            if isinstance(target, type) and issubclass(target, Exception):
                error = target(message)
                if error_name(error) != name:
                    error.name = name  # type: ignore[attr-defined]
                return error
        except Exception:  # any class that cannot be rebuilt falls back below
            log.debug("could not rebuild %s", record.error_class, exc_info=True)
    return StepFailedError(message, name=name)
