"""Step failures: which stop retries, what they are called, and how a cached one is raised
again when a run is replayed: the same class, with the same ``args`` and the same JSON-able
attributes, made without calling its ``__init__`` (whose parameters need not be its
``args``), so that ``except`` and what it reads behave as on the run that failed."""

from __future__ import annotations

import importlib
import json
import logging
from typing import Any

from stepline.errors import ApiError, NonRetryableError, StepFailedError
from stepline.store.records import StepRecord
from stepline.validation import dump_json, storable_text

__all__ = [
    "error_message",
    "error_name",
    "error_state",
    "failed_the_instance",
    "is_non_retryable",
    "rebuild_error",
]

log = logging.getLogger("stepline.engine")


def is_non_retryable(exc: BaseException) -> bool:
    return (
        isinstance(exc, NonRetryableError)
        or type(exc).__name__ == "NonRetryableError"
        or _text(exc).startswith("NonRetryableError")
    )


_STATE_MAX_BYTES = 64 * 1024
"""A failure's ``args`` and attributes are kept up to this size; past it, less (see
:func:`error_state`)."""


def error_name(exc: BaseException) -> str:
    """The class's name; or the name an error of Stepline's carries, as a JavaScript error's
    would (``NonRetryableError(message, name)``, and a failure replayed as
    ``StepFailedError``). Any other error's ``name`` attribute is its own business (an
    ``AttributeError``'s is the missing attribute's)."""
    name = getattr(exc, "name", None) if _carries_a_name(exc) else None
    return storable_text(name if isinstance(name, str) and name else type(exc).__name__)


def _carries_a_name(exc: BaseException) -> bool:
    return isinstance(exc, NonRetryableError | StepFailedError) or is_non_retryable(exc)


def error_message(exc: BaseException) -> str:
    """``str(exc)``, in a form every store can keep; for an error of Stepline's API (a bad
    step name or duration in workflow code, say), its sentence without the REST key."""
    if isinstance(exc, ApiError) and exc.detail:
        return storable_text(exc.detail)
    return storable_text(_text(exc))


def _text(exc: BaseException) -> str:
    """``str(exc)``; when that raises, a word on why there is none (the error is still the
    attempt's, not the engine's)."""
    try:
        return str(exc)
    except Exception as failure:
        return f"<str() raised {type(failure).__name__}>"


def error_state(exc: BaseException) -> str:
    """What :func:`rebuild_error` needs to raise ``exc`` again, as the text of the step's
    ``error_class`` column: a JSON object of its class's path, its ``args`` and the attributes
    in its ``__dict__`` that are JSON (the others are left out). An exception group (a step
    that ran a ``TaskGroup``) keeps its message and each of its exceptions' states, so that
    ``except*`` matches on the replay as it did. Past ``_STATE_MAX_BYTES``, less is kept, a
    group's structure the longest (:func:`_structure`), then the class alone."""
    state = _state(exc)
    text = dump_json(state)
    for keep in _KEPT_PAST_THE_SIZE:
        if len(text) <= _STATE_MAX_BYTES:
            return text
        text = dump_json(_structure(state, keep))
    return text if len(text) <= _STATE_MAX_BYTES else dump_json({"class": state["class"]})


_KEPT_PAST_THE_SIZE = ("messages", "group messages", "classes", "each class once")
"""What a group's structure keeps, from the most to the least: its exceptions' messages and
its own; its own message alone; neither; and neither, with one exception of each class and
name (``except*`` matches the same clauses, with fewer exceptions)."""


def _structure(state: dict[str, Any], keep: str) -> dict[str, Any]:
    """``state`` without args and attributes: its class, and a group's message and
    exceptions (their classes and names, and what ``keep`` says), which ``except*`` matches."""
    kept: dict[str, Any] = {"class": state["class"]}
    group = state.get("group")
    if group is None:
        return kept
    members = []
    seen = set()
    for member in group["exceptions"]:
        reduced = {
            **_structure(member, keep),
            "name": member["name"],
            "message": member["message"] if keep == "messages" else "",
        }
        if keep == "each class once":
            identity = dump_json(reduced)
            if identity in seen:
                continue
            seen.add(identity)
        members.append(reduced)
    message = group["message"] if keep in ("messages", "group messages") else ""
    kept["group"] = {"message": message, "exceptions": members}
    return kept


def _state(exc: BaseException) -> dict[str, Any]:
    cls = type(exc)
    state: dict[str, Any] = {"class": storable_text(f"{cls.__module__}:{cls.__qualname__}")}
    if isinstance(exc, BaseExceptionGroup):
        members = [
            {**_state(e), "name": error_name(e), "message": error_message(e)}
            for e in exc.exceptions
        ]
        state["group"] = {"message": storable_text(exc.message), "exceptions": members}
    else:
        try:
            args = list(exc.args)
            if isinstance(exc, OSError) and (exc.filename is not None or exc.filename2 is not None):
                # What OSError's constructor takes to set them; its args stay (errno, strerror).
                args = [exc.errno, exc.strerror, exc.filename, None, exc.filename2]
            dump_json(args)
            state["args"] = args
        except (TypeError, ValueError):
            pass  # rebuilt from its message instead
    attrs = {}
    for key, value in getattr(exc, "__dict__", {}).items():
        try:
            dump_json({key: value})  # a name with a lone surrogate is no JSON we can keep
        except (TypeError, ValueError):
            continue
        attrs[key] = value
    if attrs:
        state["attrs"] = attrs
    return state


def failed_the_instance(record: StepRecord) -> bool:
    """Whether a failed step's row holds the instance's failure, not the step's own: a
    result that is not JSON, say, recorded by the engine (``_end_fatally``) with no state to
    rebuild, where the step's own failure keeps its state (:func:`error_state`)."""
    return record.error_class is None and record.error_name == "WorkflowFatalError"


def rebuild_error(record: StepRecord) -> Exception:
    """The cached failure of a step: as the same class with the same state when it can be
    made, else a :class:`StepFailedError` with the original name and message."""
    message = record.error_message or ""
    name = record.error_name or "Error"
    text = record.error_class
    if not text:
        return StepFailedError(message, name=name)
    try:
        # A row written before the state was kept holds only "module:Qualname".
        state = json.loads(text) if text.startswith("{") else {"class": text}
    except ValueError:
        return StepFailedError(message, name=name)
    return _rebuilt_or_failed(state, name, message)


def _rebuilt_or_failed(state: dict[str, Any], name: str, message: str) -> Exception:
    try:
        return _rebuilt(state, message)
    except Exception:  # any class that cannot be rebuilt falls back below
        log.debug("could not rebuild %s", state.get("class"), exc_info=True)
    return StepFailedError(message, name=name)


def _rebuilt(state: dict[str, Any], message: str) -> Exception:
    module_name, _, qualname = state["class"].partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not (isinstance(target, type) and issubclass(target, Exception)):
        raise TypeError(f"{state['class']} is not an Exception class")
    group = state.get("group")
    if group is not None:
        members = [_rebuilt_or_failed(m, m["name"], m["message"]) for m in group["exceptions"]]
        args = [group["message"], members]
    else:
        args = state.get("args", [message])
    # BaseException.__new__ sets ``args`` (OSError's parses them, an exception group's keeps
    # its exceptions); __init__ is not called.
    error: Exception = target.__new__(target, *args)
    error.__dict__.update(state.get("attrs", {}))
    return error
