"""Every SQL statement of the SQLite store, by name."""

from __future__ import annotations

import functools
from collections.abc import Callable

from stepline.store.records import DEFAULT_RETENTION_MS, RECOVERED
from stepline.store.sqlite_rows import (
    EVENT_COLUMNS,
    INSTANCE_COLUMNS,
    STEP_COLUMNS,
    TOKEN_COLUMNS,
    VERSION_COLUMNS,
    WORKFLOW_COLUMNS,
    cut_step_columns,
    run_step_columns,
)

INSTANCE_COLS = INSTANCE_COLUMNS
_FINISHED = "('complete', 'errored', 'terminated')"
_RETAIN = DEFAULT_RETENTION_MS

CREATE_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_on INTEGER NOT NULL)"
)
APPLIED_MIGRATIONS = "SELECT version, name FROM schema_migrations"
RECORD_MIGRATION = "INSERT INTO schema_migrations (version, name, applied_on) VALUES (?, ?, ?)"

# -- workflows and versions ----------------------------------------------------------------
WORKFLOW_BY_NAME = f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE account_id = ? AND name = ?"
WORKFLOW_BY_ID = f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ?"
INSERT_WORKFLOW = (
    "INSERT INTO workflows (id, account_id, name, class_name, script_name, version_id, "
    "created_on, modified_on, step_limit, success_retention_ms, error_retention_ms, "
    "concurrency_limit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
UPDATE_WORKFLOW = (
    "UPDATE workflows SET class_name = ?, script_name = ?, version_id = ?, modified_on = ?, "
    "step_limit = ?, success_retention_ms = ?, error_retention_ms = ?, concurrency_limit = ? "
    "WHERE id = ?"
)
INSERT_VERSION = f"INSERT INTO versions ({VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
VERSION_BY_ID = f"SELECT {VERSION_COLUMNS} FROM versions WHERE id = ?"
LIST_WORKFLOWS = (
    f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE account_id = ? AND name LIKE ? ESCAPE '\\' "
    "ORDER BY name LIMIT ? OFFSET ?"
)
COUNT_WORKFLOWS = "SELECT COUNT(*) FROM workflows WHERE account_id = ? AND name LIKE ? ESCAPE '\\'"
COUNT_BY_STATUS = (
    "SELECT workflow_id, status, COUNT(*) FROM instances WHERE workflow_id IN ({marks}) "
    "AND (expires_on IS NULL OR expires_on > ?) GROUP BY workflow_id, status"
)
DELETE_WORKFLOW = "DELETE FROM workflows WHERE id = ?"
START_TERMINATOR = (
    "UPDATE workflows SET terminator_running = 1, terminator_job = ?, terminator_lease = ? "
    "WHERE id = ? AND terminator_running = 0"
)
END_TERMINATOR = (
    "UPDATE workflows SET terminator_running = 0, terminator_job = NULL, terminator_lease = NULL "
    "WHERE id = ? AND terminator_job = ?"
)
TAKE_TERMINATOR_JOBS = (
    "UPDATE workflows SET terminator_lease = ? WHERE terminator_running = 1 "
    "AND (terminator_lease IS NULL OR terminator_lease <= ?) RETURNING id, terminator_job"
)
HOLD_TERMINATOR_JOB = (
    "UPDATE workflows SET terminator_lease = ? "
    "WHERE id = ? AND terminator_running = 1 AND terminator_job = ?"
)
LIST_VERSIONS = (
    f"SELECT {VERSION_COLUMNS} FROM versions WHERE workflow_id = ? "
    "ORDER BY created_on DESC, rowid DESC LIMIT ? OFFSET ?"
)
COUNT_VERSIONS = "SELECT COUNT(*) FROM versions WHERE workflow_id = ?"

# -- instances -----------------------------------------------------------------------------
_INSERTED_COLUMNS = (
    "workflow_id, id, version_id, status, params, created_on, modified_on, trigger_source, "
    "success_retention_ms, error_retention_ms, schedule_cron, scheduled_time, started_on, "
    "generation, lease_owner, lease_expires"
)
"""What a new instance's row is written with: as built, queued or already claimed."""
INSERT_INSTANCE = (
    f"INSERT INTO instances ({_INSERTED_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (workflow_id, id) DO NOTHING RETURNING pk"
)
DELETE_EXPIRED_IDS = (
    "DELETE FROM instances WHERE workflow_id = ? AND expires_on <= ? AND id IN ({marks})"
)
INSERT_INSTANCES = (
    f"INSERT INTO instances ({_INSERTED_COLUMNS}) "
    "VALUES {rows} ON CONFLICT (workflow_id, id) DO NOTHING"
)
MAX_INSTANCE_PK = "SELECT MAX(pk) FROM instances"
INSTANCES_AFTER = "SELECT pk, id FROM instances WHERE pk > ?"
"""The instances one insert added: every pk above the largest before it (one writer)."""
TOUCH_TRIGGERED = "UPDATE workflows SET triggered_on = ? WHERE id = ?"
INSTANCE_BY_ID = f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE workflow_id = ? AND id = ?"
INSTANCE_BY_PK = f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE pk = ?"
EVENT_TARGET = f"SELECT {INSTANCE_COLUMNS}, buffered_bytes FROM instances WHERE pk = ?"
"""The instance an event is sent to, and what its untaken events weigh."""
LIST_INSTANCES = (
    f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE {{where}} "
    "ORDER BY created_on {order}, pk {order} LIMIT ? OFFSET ?"
)
COUNT_INSTANCES = "SELECT COUNT(*) FROM instances WHERE {where}"
STEPS_OF = f"SELECT {STEP_COLUMNS} FROM steps WHERE instance_pk = ? ORDER BY seq"
STEPS_CUT_OF = f"SELECT {cut_step_columns('?')} FROM steps WHERE instance_pk = ? ORDER BY seq"
STEP_OF = f"SELECT {STEP_COLUMNS} FROM steps WHERE instance_pk = ? AND key = ?"
COUNT_STEPS = "SELECT COUNT(*) FROM steps WHERE instance_pk = ? AND kind <> 'termination'"
_RUN_STEP_COLUMNS = run_step_columns("length(CAST(output AS BLOB))")
RUN_STEPS_OF = f"SELECT {_RUN_STEP_COLUMNS} FROM steps WHERE instance_pk = ? ORDER BY seq"
RUN_STEPS_OF_MANY = (
    f"SELECT {_RUN_STEP_COLUMNS} FROM steps WHERE instance_pk IN ({{marks}}) "
    "ORDER BY instance_pk, seq"
)
STEP_OUTPUT = "SELECT output FROM steps WHERE instance_pk = ? AND key = ?"

# -- the engine ----------------------------------------------------------------------------
_LEASE_LAPSED = "(lease_expires IS NULL OR lease_expires < ?)"
_KEEP_RECOVERED = f"CASE WHEN wake_kind = '{RECOVERED}' THEN wake_kind END"
"""A claim clears the wake kind, but for the mark of a recovery, which its run reads."""
RECOVER_PAUSING = (
    "UPDATE instances SET status = 'paused', paused_on = ?, modified_on = ?, "
    f"wake_kind = '{RECOVERED}', lease_owner = NULL, lease_expires = NULL "
    f"WHERE status = 'waitingForPause' AND {_LEASE_LAPSED}"
)
RECOVER_RUNNING = (
    f"UPDATE instances SET status = 'queued', wake_kind = '{RECOVERED}', modified_on = ?, "
    f"lease_owner = NULL, lease_expires = NULL WHERE status = 'running' AND {_LEASE_LAPSED}"
)
_RENEW_LEASES = (
    "UPDATE instances SET lease_expires = ? WHERE lease_owner = ? "
    "AND status IN ('running', 'waitingForPause') AND lease_expires >= ?"
)
RENEW_LEASES = _RENEW_LEASES + " RETURNING pk"
RENEW_SOME_LEASES = _RENEW_LEASES + " AND pk IN ({marks}) RETURNING pk"
PAUSING_AMONG = "SELECT pk FROM instances WHERE status = 'waitingForPause' AND pk IN ({marks})"
RELEASE = (
    # A pause written since the claim: no step has run, so it takes effect now.
    "UPDATE instances SET status = CASE status WHEN 'running' THEN 'queued' ELSE 'paused' END, "
    "paused_on = CASE status WHEN 'running' THEN paused_on ELSE ?1 END, modified_on = ?1, "
    "lease_owner = NULL, lease_expires = NULL "
    "WHERE pk = ?2 AND generation = ?3 AND status IN ('running', 'waitingForPause')"
)
_CLAIM = (
    "UPDATE instances SET status = 'running', started_on = COALESCE(started_on, ?), "
    f"modified_on = ?, wake_at = NULL, wake_kind = {_KEEP_RECOVERED}, "
    "generation = generation + 1, "
    "lease_owner = ?, lease_expires = ? WHERE pk IN ({select}) "
    f"RETURNING {INSTANCE_COLUMNS}"
)
_DUE = (
    "SELECT pk FROM instances WHERE status = 'waiting' AND wake_at <= ? {only} "
    "ORDER BY wake_at LIMIT ?"
)
_QUEUED = (
    "SELECT pk FROM instances WHERE status = 'queued' {only} ORDER BY status, wake_at, pk LIMIT ?"
)


@functools.lru_cache(maxsize=256)
def claims(only: str) -> tuple[str, str]:
    """The claims of due instances, then of queued ones, that also match ``only`` (a
    condition with ``?`` marks, or nothing): the workflow with a concurrency limit being
    claimed for, the others but those, and not the versions the engine cannot load."""
    return _CLAIM.format(select=_DUE.format(only=only)), _CLAIM.format(
        select=_QUEUED.format(only=only)
    )


LIMITED_WORKFLOWS = (
    "SELECT w.id, w.concurrency_limit, (SELECT COUNT(*) FROM instances i "
    "WHERE i.workflow_id = w.id AND i.status IN ('running', 'waitingForPause')) "
    "FROM workflows w WHERE w.concurrency_limit IS NOT NULL"
)
NEXT_WAKE = "SELECT MIN(wake_at) FROM instances WHERE status = 'waiting'"
NEXT_WAKE_OF_KINDS = (
    "SELECT MIN(wake_at) FROM instances WHERE status = 'waiting' AND wake_kind IN ({marks})"
)
GENERATION_OF = "SELECT generation FROM instances WHERE pk = ?"
_STEP_UPDATE = (
    "ON CONFLICT (instance_pk, key) DO UPDATE SET seq = excluded.seq, kind = excluded.kind, "
    "name = excluded.name, status = excluded.status, start_at = excluded.start_at, "
    "end_at = excluded.end_at, config = excluded.config, attempts = excluded.attempts, "
    "output = excluded.output, error_name = excluded.error_name, "
    "error_message = excluded.error_message, error_class = excluded.error_class, "
    "wake_at = excluded.wake_at, event_type = excluded.event_type"
)
UPSERT_STEP = (
    f"INSERT INTO steps ({STEP_COLUMNS}) "
    f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) {_STEP_UPDATE}"
)
NULL_MARK = 0.5
"""Stands for NULL among the parameters of the fenced writes, which read it back with
``NULLIF(..., 0.5)``: Python's sqlite3 binds ``None`` ten times slower than a number (it looks
for an adapter first, holding the GIL), and no column these statements write holds a real."""
_NULLABLE_STEP_COLUMNS = {8, 9, 11, 12, 13, 14, 15, 16}
"""end_at, config, output, error_name, error_message, error_class, wake_at, event_type."""


def _step_values(column: Callable[[int], str]) -> str:
    """The select list of a fenced step write: column ``n`` as ``column(n)``, read back from
    :data:`NULL_MARK` where it may be NULL."""
    return ", ".join(
        f"NULLIF({column(n)}, {NULL_MARK})" if n in _NULLABLE_STEP_COLUMNS else column(n)
        for n in range(1, 17)
    )


UPSERT_STEP_FENCED = (
    f"INSERT INTO steps ({STEP_COLUMNS}) "
    f"SELECT {_step_values(lambda n: '?')} WHERE EXISTS "
    "(SELECT 1 FROM instances WHERE pk = ? AND generation = ?) "
    f"{_STEP_UPDATE}"
)
"""One statement that writes a step only while its run is current (see FencedWrite)."""
UPSERT_STEPS_FENCED = (
    f"INSERT INTO steps ({STEP_COLUMNS}) "
    f"SELECT {_step_values(lambda n: f'v.column{n}')} FROM (VALUES {{rows}}) AS v WHERE EXISTS "
    "(SELECT 1 FROM instances WHERE pk = v.column17 AND generation = v.column18) "
    f"{_STEP_UPDATE}"
)
"""``UPSERT_STEP_FENCED`` for many rows at once: ``{rows}`` holds that many rows of 18
parameters each, the step's 16 columns and then the instance's pk and generation."""
EVENT_READY_FOR_WAITS = (
    "SELECT 1 FROM events WHERE instance_pk = ? AND consumed_by IS NULL "
    "AND type IN ({marks}) LIMIT 1"
)
"""An untaken event of one of the types that the parking run waits for. Not
of every wait stored waiting: one an earlier run stored and this run's code no longer
reaches takes nothing, and its event would make every park of the instance due at once."""
RESUMED_SINCE_PAUSE = (
    "SELECT 1 FROM instances WHERE pk = ? AND generation = ? AND status = 'running'"
)
"""A run that parks as "paused" while its pause was taken back (a resume, whose notice did
not reach the engine) parks the instance due at once instead: else it stayed paused, though
the resume had answered "running"."""
SUSPEND = (
    # A run that parks as "waiting" while a pause was written (waitingForPause; its notice
    # had not reached the runner) parks the instance paused: waits are interrupted at once.
    "UPDATE instances SET "
    "status = CASE WHEN status = 'waitingForPause' AND ?1 = 'waiting' THEN 'paused' ELSE ?1 END, "
    "paused_on = CASE WHEN status = 'waitingForPause' AND ?1 = 'waiting' THEN ?5 ELSE ?4 END, "
    "wake_at = ?2, wake_kind = ?3, modified_on = ?5, lease_owner = NULL, lease_expires = NULL "
    "WHERE pk = ?6 AND generation = ?7"
)


def _finish(p: Callable[[int], str]) -> str:
    """The end of a run, from ``FINISH``'s ten parameters (``p(n)`` names the n-th). A run
    that completes while a pause was written (waitingForPause; its notice had not reached
    the runner) parks the instance paused instead: the end is a step boundary too (§3.2),
    and resumed, the replay returns at once."""
    pausing = f"(status = 'waitingForPause' AND {p(1)} = 'complete')"
    return (
        f"UPDATE instances SET status = CASE WHEN {pausing} THEN 'paused' ELSE {p(1)} END, "
        f"output = CASE WHEN {pausing} THEN NULL ELSE NULLIF({p(2)}, {NULL_MARK}) END, "
        f"error_name = NULLIF({p(3)}, {NULL_MARK}), error_message = NULLIF({p(4)}, {NULL_MARK}), "
        f"ended_on = CASE WHEN {pausing} THEN NULL ELSE {p(5)} END, "
        f"paused_on = CASE WHEN {pausing} THEN {p(5)} ELSE paused_on END, "
        f"modified_on = {p(6)}, wake_at = NULL, wake_kind = NULL, lease_owner = NULL, "
        f"lease_expires = NULL, expires_on = CASE WHEN {pausing} THEN NULL ELSE {p(7)} + "
        f"CASE WHEN {p(8)} = 'complete' THEN COALESCE(success_retention_ms, {_RETAIN}) "
        f"ELSE COALESCE(error_retention_ms, {_RETAIN}) END END "
    )


FINISH = _finish(lambda n: f"?{n}") + "WHERE pk = ?9 AND generation = ?10"
FINISH_MANY = (
    _finish(lambda n: f"v.column{n}")
    + "FROM (VALUES {rows}) AS v WHERE pk = v.column9 AND generation = v.column10"
)
"""``FINISH`` for many instances at once: ``{rows}`` holds rows of ``FINISH``'s parameters."""
OLDEST_EVENT = (
    f"SELECT {EVENT_COLUMNS} FROM events WHERE instance_pk = ? AND type = ? "
    "AND consumed_by IS NULL AND created_on <= ? ORDER BY id LIMIT 1"
)
"""The oldest untaken event of a type sent by a time: a wait's deadline, as an event sent
after it is not that wait's, however late its replay comes (§3.5)."""
CONSUME_EVENT = "UPDATE events SET consumed_by = ? WHERE id = ?"

# -- control -------------------------------------------------------------------------------
INSERT_EVENT = "INSERT INTO events (instance_pk, type, payload, created_on) VALUES (?, ?, ?, ?)"
# A wait past its deadline needs no event: it has timed out, though no run has said so yet.
_A_WAIT_NEEDS_IT = (
    "EXISTS (SELECT 1 FROM steps WHERE instance_pk = ? AND kind = 'wait' "
    "AND status = 'waiting' AND event_type = ? AND wake_at >= ?)"
)
WAKE_FOR_EVENT = (
    "UPDATE instances SET wake_at = ?, modified_on = ? WHERE pk = ? AND status = 'waiting' "
    f"AND {_A_WAIT_NEEDS_IT}"
)
CLAIM_WOKEN = _CLAIM.format(
    select="SELECT pk FROM instances WHERE pk = ? AND status = 'waiting' AND workflow_id NOT IN "
    f"(SELECT id FROM workflows WHERE concurrency_limit IS NOT NULL) AND {_A_WAIT_NEEDS_IT}"
)
"""Claim an instance that an event wakes, unless its workflow has a concurrency limit."""
FIRST_WAIT_FOR = (
    "SELECT key FROM steps WHERE instance_pk = ? AND kind = 'wait' AND status = 'waiting' "
    "AND event_type = ? AND wake_at >= ? ORDER BY seq LIMIT 1"
)
COMPLETE_WAIT = (
    "UPDATE steps SET status = 'complete', end_at = ?, output = ?, wake_at = ? "
    "WHERE instance_pk = ? AND key = ?"
)
UPDATE_INSTANCE_IF = (
    "UPDATE instances SET {sets} WHERE pk = ? AND status IN ({marks}) "
    f"RETURNING {INSTANCE_COLUMNS}"
)
TERMINATE = (
    "UPDATE instances SET status = 'terminated', ended_on = ?, modified_on = ?, wake_at = NULL, "
    "wake_kind = NULL, paused_on = NULL, generation = generation + 1, "
    f"expires_on = ? + COALESCE(error_retention_ms, {_RETAIN}) "
    f"WHERE status NOT IN {_FINISHED} AND pk IN ({{marks}})"
)
ADD_TERMINATION_STEP = (
    "INSERT OR REPLACE INTO steps (instance_pk, key, seq, kind, name, status, start_at, "
    "attempts) VALUES (?, 'termination', (SELECT COALESCE(MAX(seq), 0) + 1 FROM steps "
    "WHERE instance_pk = ?), 'termination', 'termination', 'complete', ?, '[]')"
)
SHIFT_STEP_TIMERS = (
    "UPDATE steps SET wake_at = wake_at + ? WHERE instance_pk = ? "
    "AND status IN ('waiting', 'running') AND wake_at IS NOT NULL"
)
RESUME = (
    "UPDATE instances SET status = 'queued', paused_on = NULL, wake_at = NULL, "
    f"wake_kind = {_KEEP_RECOVERED}, modified_on = ? WHERE pk = ? RETURNING {INSTANCE_COLUMNS}"
)
DELETE_ALL_EVENTS = "DELETE FROM events WHERE instance_pk = ?"
DELETE_ALL_STEPS = "DELETE FROM steps WHERE instance_pk = ?"
DELETE_EVENTS_OF_WIPED = (
    "DELETE FROM events WHERE instance_pk = ? AND (consumed_by IS NULL OR consumed_by IN "
    "(SELECT key FROM steps WHERE instance_pk = ? AND seq >= ?))"
)
DELETE_STEPS_FROM = "DELETE FROM steps WHERE instance_pk = ? AND (seq >= ? OR kind = 'termination')"
RUNNING_STEPS = "SELECT key, attempts FROM steps WHERE instance_pk = ? AND status = 'running'"
SET_STEP_ATTEMPTS = "UPDATE steps SET attempts = ? WHERE instance_pk = ? AND key = ?"
# A restart runs the workflow's code as it is now, and says so: the instance takes the
# workflow's current version (spec §3.3 leaves the version at restart open).
_CURRENT_VERSION = "(SELECT w.version_id FROM workflows w WHERE w.id = instances.workflow_id)"
RESTART = (
    "UPDATE instances SET status = 'queued', started_on = NULL, ended_on = NULL, output = NULL, "
    "error_name = NULL, error_message = NULL, expires_on = NULL, wake_at = NULL, "
    "wake_kind = NULL, paused_on = NULL, generation = generation + 1, modified_on = ?, "
    f"version_id = {_CURRENT_VERSION} WHERE pk = ? RETURNING {INSTANCE_COLUMNS}"
)
DELETE_INSTANCES = "DELETE FROM instances WHERE pk IN ({marks}) RETURNING pk"
SELECT_PKS_BY_STATUS = (
    "SELECT pk FROM instances WHERE workflow_id = ? AND status IN ({marks}) "
    "AND created_on <= ? ORDER BY pk LIMIT ?"
)
DELETE_EXPIRED = (
    "DELETE FROM instances WHERE pk IN (SELECT pk FROM instances WHERE expires_on <= ? LIMIT ?)"
)

# -- schedules -----------------------------------------------------------------------------
SCHEDULES_OF = (
    "SELECT workflow_id, cron, next_fire_at FROM schedules WHERE workflow_id IN ({marks}) "
    "ORDER BY workflow_id, cron"
)
DELETE_SCHEDULES = "DELETE FROM schedules WHERE workflow_id = ?"
INSERT_SCHEDULE = "INSERT INTO schedules (workflow_id, cron, next_fire_at) VALUES (?, ?, ?)"
COUNT_ACCOUNT_SCHEDULES = (
    "SELECT COUNT(*) FROM schedules s JOIN workflows w ON w.id = s.workflow_id "
    "WHERE w.account_id = ? AND w.id != ?"
)
DUE_SCHEDULES = (
    "SELECT workflow_id, cron, next_fire_at FROM schedules WHERE next_fire_at <= ? "
    "ORDER BY next_fire_at LIMIT ?"
)
ADVANCE_SCHEDULE = (
    "UPDATE schedules SET next_fire_at = ? WHERE workflow_id = ? AND cron = ? AND next_fire_at = ?"
)
NEXT_SCHEDULE_FIRE = "SELECT MIN(next_fire_at) FROM schedules"

# -- tokens --------------------------------------------------------------------------------
INSERT_TOKEN = f"INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
TOKEN_BY_HASH = f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_hash = ?"
