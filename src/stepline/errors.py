"""Every error Stepline raises, and the one table that maps them to Cloudflare's codes.

The hierarchy::

    SteplineError
    ├── ApiError                      carries code, message key and HTTP status
    │   ├── InvalidRequest            10002  400  workflows.api.error.body
    │   │   ├── InvalidName           10002  400  (bad workflow name / instance id / event type)
    │   │   ├── InvalidEventType      10002  400  workflow.invalid_event_type
    │   │   ├── InvalidDuration       10002  400  (a duration string with an unknown unit)
    │   │   ├── InvalidStepConfig     10002  400  (a retry or timeout setting out of range)
    │   │   └── PayloadTooLarge       10002  413  (params or event payload over 1 MiB)
    │   ├── WorkflowNotFound          10200  404  workflows.api.error.workflow.not_found
    │   ├── WorkflowClassNotFound     10201  400  workflows.api.error.workflow.class_not_found
    │   ├── VersionNotFound           10300  404  workflows.api.error.version.not_found
    │   ├── InstanceNotFound          10400  404  workflows.api.error.instance.not_found
    │   ├── CannotTerminate           10401  409  workflows.api.error.instance.cannot_terminate
    │   ├── CannotRestart             10402  409  workflows.api.error.instance.cannot_restart
    │   ├── CannotSendEvent           10403  409  workflows.api.error.instance.cannot_send_event
    │   ├── InvalidTransition         10404  409  workflows.api.error.instance.invalid_transition
    │   ├── InstanceAlreadyExists     10405  409  workflows.api.error.instance.already_exists
    │   ├── RouteNotFound              7003  404  workflows.api.error.not_found
    │   ├── MethodNotAllowed           7001  405  workflows.api.error.method_not_allowed
    │   ├── MissingCredentials         9106  400  Missing X-Auth-Key, X-Auth-Email or …
    │   ├── AuthenticationFailed      10000  401  Authentication error
    │   ├── PermissionDenied          10000  403  Authentication error
    │   ├── StoreUnavailable          10001  503  workflows.api.error.internal_server
    │   └── InternalServerError       10001  500  workflows.api.error.internal_server
    ├── ConfigError                   a setting the process cannot start with: a bad
    │   │                             stepline.toml, an unimportable class, a bad database URL
    │   ├── EngineAlreadyRunning      a second engine on a SQLite file
    │   ├── SchemaTooNew              a database a newer Stepline migrated
    │   └── DatabaseNotWritable       a database (or its folder) this process may not write
    ├── NotStarted                    a Stepline used before its start or after its stop
    └── StaleRunError                 a runner's write lost to terminate/restart/delete (internal)

Errors raised *inside* workflow code are plain exceptions, as in Cloudflare:
``NonRetryableError`` stops retries, ``WorkflowTimeoutError`` is a step attempt or a
``wait_for_event`` running out of time, ``NonRetryableDelayError`` a step's delay function
that failed. Conflicts that a retry cannot fix set
``should_retry = False`` so the SDKs do not resend them (clients.md Q9).
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ApiError",
    "AuthenticationFailed",
    "CannotRestart",
    "CannotSendEvent",
    "CannotTerminate",
    "ConfigError",
    "DatabaseNotWritable",
    "EngineAlreadyRunning",
    "InstanceAlreadyExists",
    "InstanceNotFound",
    "InternalServerError",
    "InvalidDuration",
    "InvalidEventType",
    "InvalidName",
    "InvalidRequest",
    "InvalidStepConfig",
    "InvalidTransition",
    "MethodNotAllowed",
    "MissingCredentials",
    "NonRetryableDelayError",
    "NonRetryableError",
    "NotStarted",
    "PayloadTooLarge",
    "PermissionDenied",
    "RouteNotFound",
    "SchemaTooNew",
    "StaleRunError",
    "StepFailedError",
    "SteplineError",
    "StoreUnavailable",
    "VersionNotFound",
    "WorkflowClassNotFound",
    "WorkflowFatalError",
    "WorkflowInternalError",
    "WorkflowNotFound",
    "WorkflowTimeoutError",
]


class SteplineError(Exception):
    """The root of every error Stepline raises on its own account."""


class ApiError(SteplineError):
    """An error a caller of the API or the client sees, with its Cloudflare code.

    ``message`` is the machine key Cloudflare puts in ``errors[0].message``; ``detail`` is a
    human sentence that Stepline adds for people reading logs and the CLI.
    """

    code: ClassVar[int] = 10001
    key: ClassVar[str] = "workflows.api.error.internal_server"
    http_status: ClassVar[int] = 500
    should_retry: ClassVar[bool | None] = None

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail
        super().__init__(f"{self.key}: {detail}" if detail else self.key)

    @property
    def message(self) -> str:
        return self.key


class InvalidRequest(ApiError):
    code, key, http_status = 10002, "workflows.api.error.body", 400


class InvalidName(InvalidRequest):
    """A workflow name, instance id or event type that breaks the spec's pattern or length."""


class InvalidEventType(InvalidRequest):
    key = "workflow.invalid_event_type"


class InvalidDuration(InvalidRequest, ValueError):
    """A duration that is neither milliseconds nor ``"<number> <unit>"`` with a known unit."""


class InvalidStepConfig(InvalidRequest, ValueError):
    """A step's retry or timeout setting that is out of range or unknown."""


class PayloadTooLarge(InvalidRequest):
    http_status = 413


class WorkflowNotFound(ApiError):
    code, key, http_status = 10200, "workflows.api.error.workflow.not_found", 404


class WorkflowClassNotFound(ApiError):
    code, key, http_status = 10201, "workflows.api.error.workflow.class_not_found", 400


class VersionNotFound(ApiError):
    code, key, http_status = 10300, "workflows.api.error.version.not_found", 404


class InstanceNotFound(ApiError):
    code, key, http_status = 10400, "workflows.api.error.instance.not_found", 404


class _Conflict(ApiError):
    http_status = 409
    should_retry = False


class CannotTerminate(_Conflict):
    code, key = 10401, "workflows.api.error.instance.cannot_terminate"


class CannotRestart(_Conflict):
    code, key = 10402, "workflows.api.error.instance.cannot_restart"


class CannotSendEvent(_Conflict):
    code, key = 10403, "workflows.api.error.instance.cannot_send_event"


class InvalidTransition(_Conflict):
    code, key = 10404, "workflows.api.error.instance.invalid_transition"


class InstanceAlreadyExists(_Conflict):
    code, key = 10405, "workflows.api.error.instance.already_exists"


class RouteNotFound(ApiError):
    code, key, http_status = 7003, "workflows.api.error.not_found", 404


class MethodNotAllowed(ApiError):
    """A known path asked with a method it does not serve; resending cannot help."""

    code, key, http_status = 7001, "workflows.api.error.method_not_allowed", 405
    should_retry = False


class MissingCredentials(ApiError):
    code, http_status = 9106, 400
    key = "Missing X-Auth-Key, X-Auth-Email or Authorization headers"


class AuthenticationFailed(ApiError):
    code, key, http_status = 10000, "Authentication error", 401


class PermissionDenied(ApiError):
    code, key, http_status = 10000, "Authentication error", 403


class StoreUnavailable(ApiError):
    """The database cannot be reached right now; the SDKs may retry."""

    code, key, http_status = 10001, "workflows.api.error.internal_server", 503


class InternalServerError(ApiError):
    code, key, http_status = 10001, "workflows.api.error.internal_server", 500


class ConfigError(SteplineError):
    """A setting the process cannot start with: a ``stepline.toml`` that cannot be read or
    names a class that cannot be imported, a database that cannot be used as given."""


class EngineAlreadyRunning(ConfigError):
    """An engine is already running on this SQLite database (it has one engine at most)."""


class SchemaTooNew(ConfigError):
    """The database records a schema migration this Stepline does not have: a newer release
    migrated it. Not :class:`StoreUnavailable`, which may pass with a retry; this one lasts
    until Stepline is upgraded."""


class DatabaseNotWritable(ConfigError):
    """The database refuses this process's writes, and waiting will not change that: a SQLite
    file or folder without write permission or on a read-only file system, a PostgreSQL user
    without the privilege to use Stepline's tables or to apply their pending migrations, a
    read-only PostgreSQL server."""


class NotStarted(SteplineError, RuntimeError):
    """A Stepline used before it was started, or after it stopped: its database is not open."""

    def __init__(self) -> None:
        super().__init__(
            "this Stepline is not started: use it inside `async with Stepline(...) as "
            "stepline:`, or call `await stepline.start()` first (a stopped one starts no more)"
        )


class StaleRunError(SteplineError):
    """A runner tried to write after its instance was terminated, restarted or deleted."""


# --- errors that workflow code sees -------------------------------------------------------


class NonRetryableError(Exception):
    """Raise inside a step to fail it at once, without further attempts.

    >>> raise NonRetryableError("card declined")
    """

    def __init__(self, message: str = "", name: str = "NonRetryableError") -> None:
        super().__init__(message)
        self.name = name


class WorkflowTimeoutError(Exception):
    """A step attempt ran past its timeout, or a ``wait_for_event`` got no event in time."""


class WorkflowFatalError(Exception):
    """An instance-level failure that no retry can mend (a non-serialisable result, a limit)."""


class NonRetryableDelayError(WorkflowFatalError):
    """A step's delay function failed (raised, took over 5 seconds, or gave no duration): the
    step fails with this, at once, instead of retrying. ``run`` can catch it."""


class WorkflowInternalError(Exception):
    """An attempt that failed for Stepline's own reasons (a crash mid-attempt, a big result)."""


class StepFailedError(Exception):
    """A cached step failure whose original exception class could not be rebuilt on replay.

    ``name`` holds the original class name, ``str(error)`` the original message.
    """

    def __init__(self, message: str = "", name: str = "Error") -> None:
        super().__init__(message)
        self.name = name
