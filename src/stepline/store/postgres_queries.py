"""Every SQL statement of the PostgreSQL store, by name.

Parameters are numbered (``$1``); arrays of steps travel as one array per column and come
back as rows through ``unnest``, so that a batch of any size is one statement. Statements that
a runner makes are fenced by the instance's ``generation`` and take a row lock on the instance
(``FOR SHARE`` to write a step, ``FOR UPDATE`` or ``FOR NO KEY UPDATE`` to change the
instance, which taking an event does: it lowers the count of what untaken events weigh),
so a concurrent terminate, restart or claim either waits for them or makes them fail the
fence.
"""

from __future__ import annotations

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

# -- connections and migrations ------------------------------------------------------------
SERVER_KEEPALIVE = (
    "SELECT set_config(d.name, d.setting, false) FROM (VALUES "
    "('tcp_keepalives_idle', '{idle}'), ('tcp_keepalives_interval', '{interval}'), "
    "('tcp_keepalives_count', '{probes}')) AS d(name, setting) "
    "JOIN pg_settings s ON s.name = d.name WHERE s.source = 'default'"
)
"""The server's keepalive for this session, each setting nobody chose (its source is
PostgreSQL's default, not the URL's query, ``ALTER ROLE``/``DATABASE ... SET`` or the
configuration file): a template of integers, so one simple query, one round trip."""

MIGRATION_LOCK = 0x5374_6570_6C69_6E65
TRY_MIGRATION_LOCK = "SELECT pg_try_advisory_lock($1)"
MIGRATION_LOCK_HOLDER = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
    "AND ((classid::bigint << 32) | objid::bigint) = $1 LIMIT 1"
)
"""The advisory lock that serialises migrations across processes ("Stepline" in ASCII)."""

SCHEMA_STATE = (
    "SELECT current_schema() AS schema, "
    "to_regclass(quote_ident(current_schema()) || '.schema_migrations') IS NOT NULL AS recorded, "
    "(SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.oid = to_regclass('schema_migrations') AND EXISTS (SELECT 1 FROM pg_attribute a "
    "WHERE a.attrelid = c.oid AND a.attname = 'applied_on' AND NOT a.attisdropped)) AS found_in, "
    "current_setting('transaction_read_only') = 'on' AS read_only"
)
"""Where this connection's unqualified CREATE TABLE would go (the first schema of its
``search_path`` that exists and it may use), whether ``schema_migrations`` is there, the
schema where its unqualified name finds Stepline's (a later schema of the path: another
role's tables; a ``schema_migrations`` without ``applied_on`` is another tool's, Rails' or
golang-migrate's, and is not counted: with ``recorded``, no ``found_in`` says the one in this
schema is such a table), and whether the server takes writes: what a start looks at before
it does any DDL. NULL-safe: with no schema on the path, ``current_schema()`` is NULL and so
is the ``to_regclass``."""
CREATE_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_on BIGINT NOT NULL)"
)
APPLIED_MIGRATIONS = "SELECT version, name FROM schema_migrations"
RECORD_MIGRATION = "INSERT INTO schema_migrations (version, name, applied_on) VALUES ($1, $2, $3)"

# -- steps as arrays -----------------------------------------------------------------------
STEP_TYPES = (
    "bigint",
    "text",
    "integer",
    "text",
    "text",
    "text",
    "bigint",
    "bigint",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "bigint",
    "text",
)
"""The PostgreSQL type of each column of ``STEP_COLUMNS``, in order."""

_STEP_NAMES = [c.strip() for c in STEP_COLUMNS.split(",")]
_UPSERT_STEP = "ON CONFLICT (instance_pk, key) DO UPDATE SET " + ", ".join(
    f"{c} = EXCLUDED.{c}" for c in _STEP_NAMES[2:]
)
"""Replace the whole row, as SQLite's INSERT OR REPLACE does."""


def _unnest_steps(first: int) -> str:
    arrays = ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(STEP_TYPES))
    return f"unnest({arrays}) AS s ({STEP_COLUMNS})"


# -- workflows and versions ----------------------------------------------------------------
LOCK_WORKFLOW_NAME = "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))"
WORKFLOW_BY_NAME = f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE account_id = $1 AND name = $2"
WORKFLOW_BY_ID = f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = $1"
INSERT_WORKFLOW = (
    "INSERT INTO workflows (id, account_id, name, class_name, script_name, version_id, "
    "created_on, modified_on, step_limit, success_retention_ms, error_retention_ms, "
    "concurrency_limit) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)
UPDATE_WORKFLOW = (
    "UPDATE workflows SET class_name = $1, script_name = $2, version_id = $3, modified_on = $4, "
    "step_limit = $5, success_retention_ms = $6, error_retention_ms = $7, "
    "concurrency_limit = $8 WHERE id = $9"
)
INSERT_VERSION = (
    f"INSERT INTO versions ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
)
VERSION_BY_ID = f"SELECT {VERSION_COLUMNS} FROM versions WHERE id = $1"
# SQLite's LIKE ignores ASCII case and its ORDER BY compares bytes: ILIKE and COLLATE "C".
LIST_WORKFLOWS = (
    f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE account_id = $1 "
    "AND name ILIKE $2 ESCAPE '\\' ORDER BY name COLLATE \"C\" LIMIT $3 OFFSET $4"
)
COUNT_WORKFLOWS = (
    "SELECT COUNT(*) FROM workflows WHERE account_id = $1 AND name ILIKE $2 ESCAPE '\\'"
)
COUNT_BY_STATUS = (
    "SELECT workflow_id, status, COUNT(*) FROM instances WHERE workflow_id = ANY($1::text[]) "
    "AND (expires_on IS NULL OR expires_on > $2) GROUP BY workflow_id, status"
)
DELETE_WORKFLOW = "DELETE FROM workflows WHERE id = $1"
START_TERMINATOR = (
    "UPDATE workflows SET terminator_running = TRUE, terminator_job = $1, terminator_lease = $2 "
    "WHERE id = $3 AND NOT terminator_running"
)
END_TERMINATOR = (
    "UPDATE workflows SET terminator_running = FALSE, terminator_job = NULL, "
    "terminator_lease = NULL WHERE id = $1 AND terminator_job = $2"
)
TAKE_TERMINATOR_JOBS = (
    "UPDATE workflows SET terminator_lease = $1 WHERE terminator_running "
    "AND (terminator_lease IS NULL OR terminator_lease <= $2) RETURNING id, terminator_job"
)
HOLD_TERMINATOR_JOB = (
    "UPDATE workflows SET terminator_lease = $1 "
    "WHERE id = $2 AND terminator_running AND terminator_job = $3"
)
LIST_VERSIONS = (
    f"SELECT {VERSION_COLUMNS} FROM versions WHERE workflow_id = $1 "
    "ORDER BY created_on DESC, seq DESC LIMIT $2 OFFSET $3"
)
COUNT_VERSIONS = "SELECT COUNT(*) FROM versions WHERE workflow_id = $1"

# -- instances -----------------------------------------------------------------------------
DELETE_EXPIRED_IDS = (
    "DELETE FROM instances WHERE (workflow_id, id) IN "
    "(SELECT * FROM unnest($1::text[], $2::text[])) AND expires_on <= $3"
)
_INSERT_INSTANCES = (
    "WITH added AS (INSERT INTO instances (workflow_id, id, version_id, status, params, "
    "created_on, modified_on, trigger_source, success_retention_ms, error_retention_ms, "
    "schedule_cron, scheduled_time, started_on, generation, lease_owner, lease_expires) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
    "$6::bigint[], $7::bigint[], $8::text[], $9::bigint[], $10::bigint[], $11::text[], "
    "$12::bigint[], $13::bigint[], $14::bigint[], $15::text[], $16::bigint[]) "
    "{conflict} RETURNING pk, workflow_id, id), "
    "touched AS (UPDATE workflows SET triggered_on = $17 "
    "WHERE id IN (SELECT workflow_id FROM added)) "
    "SELECT pk, id FROM added"
)
INSERT_INSTANCES = _INSERT_INSTANCES.format(conflict="")
INSERT_INSTANCES_SKIPPING = _INSERT_INSTANCES.format(
    conflict="ON CONFLICT (workflow_id, id) DO NOTHING"
)
FIRST_EXISTING_ID = (
    "SELECT id FROM instances WHERE workflow_id = $1 AND id = ANY($2::text[]) "
    "ORDER BY array_position($2::text[], id) LIMIT 1"
)
INSTANCE_BY_ID = f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE workflow_id = $1 AND id = $2"
INSTANCE_BY_PK = f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE pk = $1"
LIST_INSTANCES = (
    f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE {{where}} "
    "ORDER BY created_on {order}, pk {order} LIMIT {limit} OFFSET {offset}"
)
COUNT_INSTANCES = "SELECT COUNT(*) FROM instances WHERE {where}"
STEPS_OF = f"SELECT {STEP_COLUMNS} FROM steps WHERE instance_pk = $1 ORDER BY seq"
STEPS_CUT_OF = (
    f"SELECT {cut_step_columns('$2::int')} FROM steps WHERE instance_pk = $1 ORDER BY seq"
)
STEP_OF = f"SELECT {STEP_COLUMNS} FROM steps WHERE instance_pk = $1 AND key = $2"
COUNT_STEPS = "SELECT COUNT(*) FROM steps WHERE instance_pk = $1 AND kind <> 'termination'"
_RUN_STEP_COLUMNS = run_step_columns("octet_length(output)")
RUN_STEPS_OF = f"SELECT {_RUN_STEP_COLUMNS} FROM steps WHERE instance_pk = $1 ORDER BY seq"
RUN_STEPS_OF_MANY = (
    f"SELECT {_RUN_STEP_COLUMNS} FROM steps WHERE instance_pk = ANY($1::bigint[]) "
    "ORDER BY instance_pk, seq"
)
STEP_OUTPUT = "SELECT output FROM steps WHERE instance_pk = $1 AND key = $2"

# -- the engine ----------------------------------------------------------------------------
_LEASE_LAPSED = "(lease_expires IS NULL OR lease_expires < $2)"
_KEEP_RECOVERED = f"CASE WHEN instances.wake_kind = '{RECOVERED}' THEN instances.wake_kind END"
"""A claim clears the wake kind, but for the mark of a recovery, which its run reads."""
RECOVER_INTERRUPTED = (
    "WITH lapsed AS (SELECT pk, status FROM instances "
    f"WHERE status IN ('running', 'waitingForPause') AND {_LEASE_LAPSED} "
    "ORDER BY pk FOR NO KEY UPDATE), "
    "pausing AS (UPDATE instances SET status = 'paused', paused_on = $1, modified_on = $1, "
    f"wake_kind = '{RECOVERED}', lease_owner = NULL, lease_expires = NULL FROM lapsed "
    "WHERE instances.pk = lapsed.pk AND lapsed.status = 'waitingForPause' RETURNING 1), "
    f"running AS (UPDATE instances SET status = 'queued', wake_kind = '{RECOVERED}', "
    "modified_on = $1, lease_owner = NULL, lease_expires = NULL FROM lapsed "
    "WHERE instances.pk = lapsed.pk AND lapsed.status = 'running' RETURNING 1) "
    "SELECT (SELECT COUNT(*) FROM pausing) + (SELECT COUNT(*) FROM running)"
)
"""The rows are locked in pk order, as a batch of step writes locks them: updated in the order
of the table's pages, they deadlocked with one."""
RENEW_LEASES = (
    "WITH held AS (SELECT pk FROM instances WHERE lease_owner = $2 "
    "AND status IN ('running', 'waitingForPause') AND ($3::bigint[] IS NULL OR pk = ANY($3)) "
    "AND lease_expires >= $4 ORDER BY pk FOR NO KEY UPDATE) "
    "UPDATE instances SET lease_expires = $1 FROM held WHERE instances.pk = held.pk "
    "RETURNING instances.pk"
)
"""The rows are locked in pk order, as a batch of step writes locks them (``SAVE_STEPS_OF_MANY``):
an update in the order of the table's pages deadlocked with it."""
PAUSING_AMONG = (
    "SELECT pk FROM instances WHERE pk = ANY($1::bigint[]) AND status = 'waitingForPause'"
)
_CLAIM = (
    "WITH due AS (SELECT pk, wake_at FROM instances WHERE status = 'waiting' "
    "AND wake_at <= $1 {only} ORDER BY wake_at LIMIT $2 FOR UPDATE SKIP LOCKED), "
    "queued AS (SELECT pk FROM instances WHERE status = 'queued' {only} ORDER BY pk "
    "LIMIT GREATEST($2 - (SELECT COUNT(*) FROM due), 0) FOR UPDATE SKIP LOCKED) "
    "UPDATE instances SET status = 'running', started_on = COALESCE(started_on, $1), "
    f"modified_on = $1, wake_at = NULL, wake_kind = {_KEEP_RECOVERED}, "
    "generation = generation + 1, lease_owner = $3, lease_expires = $4 "
    "FROM (SELECT pk, 0, wake_at FROM due UNION ALL SELECT pk, 1, pk FROM queued) "
    "AS picked (picked_pk, claim_rank, claim_order) WHERE pk = picked_pk "
    "RETURNING "
    + ", ".join(f"instances.{c.strip()}" for c in INSTANCE_COLUMNS.split(","))
    + ", claim_rank, claim_order"
)
"""Due sleepers first, then the queue; rows end with (claim_rank, claim_order) to sort by."""
CLAIM_RUNNABLE = _CLAIM.format(
    only="AND workflow_id NOT IN (SELECT id FROM workflows WHERE concurrency_limit IS NOT NULL) "
    "AND version_id <> ALL($5::text[])"
)
"""Claim instances of workflows without a concurrency limit, but of the versions in ``$5``."""
RELEASE = (
    # A pause written since the claim: no step has run, so it takes effect now.
    "UPDATE instances SET status = CASE status WHEN 'running' THEN 'queued' ELSE 'paused' END, "
    "paused_on = CASE status WHEN 'running' THEN paused_on ELSE $3 END, modified_on = $3, "
    "lease_owner = NULL, lease_expires = NULL "
    "WHERE pk = $1 AND generation = $2 AND status IN ('running', 'waitingForPause')"
)
CLAIM_RUNNABLE_OF = _CLAIM.format(only="AND workflow_id = $5 AND version_id <> ALL($6::text[])")
"""Claim instances of one workflow with a limit (whose row this transaction has locked)."""
# A workflow with a concurrency limit is claimed for by one engine at a time: its row lock
# is taken first, and its running instances are counted in a later statement that sees
# every claim committed before.
LOCK_LIMITED_WORKFLOWS = (
    "SELECT id, concurrency_limit FROM workflows WHERE concurrency_limit IS NOT NULL "
    "ORDER BY id FOR UPDATE SKIP LOCKED"
)
COUNT_ACTIVE = (
    "SELECT workflow_id, COUNT(*) FROM instances WHERE workflow_id = ANY($1::text[]) "
    "AND status IN ('running', 'waitingForPause') GROUP BY workflow_id"
)
NEXT_WAKE = "SELECT MIN(wake_at) FROM instances WHERE status = 'waiting'"
NEXT_WAKE_OF_KINDS = (
    "SELECT MIN(wake_at) FROM instances WHERE status = 'waiting' AND wake_kind = ANY($1::text[])"
)
SAVE_STEPS_OF_MANY = (
    "WITH fence AS (SELECT i.pk FROM instances i "
    "JOIN unnest($1::bigint[], $2::bigint[]) AS g (pk, generation) "
    "ON i.pk = g.pk AND i.generation = g.generation ORDER BY i.pk FOR SHARE OF i), "
    f"saved AS (INSERT INTO steps ({STEP_COLUMNS}) SELECT * FROM {_unnest_steps(3)} "
    f"WHERE s.instance_pk IN (SELECT pk FROM fence) {_UPSERT_STEP}) "
    "SELECT pk FROM fence"
)
"""Many instances' step rows at once; answers the pks that passed the fence."""
LOCK_FENCED = "SELECT generation FROM instances WHERE pk = $1 FOR UPDATE"
SUSPEND = (
    f"WITH saved AS (INSERT INTO steps ({STEP_COLUMNS}) SELECT * FROM {_unnest_steps(9)} "
    f"{_UPSERT_STEP}), "
    "pausing AS (SELECT status = 'waitingForPause' AND $3::text = 'waiting' AS yes "
    "FROM instances WHERE pk = $1), "
    # A run that parks as "paused" while its pause was taken back (a resume, whose notice was
    # lost on the way to this engine) parks it due at once instead: else it stayed paused,
    # though the resume had answered "running".
    "resumed AS (SELECT status = 'running' AND $3::text = 'paused' AS yes "
    "FROM instances WHERE pk = $1), "
    # Due at once for an untaken event of a type the parking run waits for ($8), not of
    # every wait stored waiting: one an earlier run stored and this run's code no longer
    # reaches takes nothing, and its event would make every park of the instance due at once.
    "ready AS (SELECT $3::text = 'waiting' AND NOT (SELECT yes FROM pausing) "
    "AND EXISTS (SELECT 1 FROM events e "
    "WHERE e.instance_pk = $1 AND e.consumed_by IS NULL AND e.type = ANY($8::text[])) "
    "AS woken) "
    # A run that parks as "waiting" while a pause was written (waitingForPause; its notice
    # had not reached the runner) parks the instance paused: waits are interrupted at once.
    "UPDATE instances SET status = CASE WHEN pausing.yes THEN 'paused' "
    "WHEN resumed.yes THEN 'waiting' ELSE $3::text END, "
    "wake_at = CASE WHEN ready.woken OR resumed.yes THEN $7::bigint ELSE $4::bigint END, "
    "wake_kind = CASE WHEN resumed.yes THEN 'timer' ELSE $5::text END, "
    "paused_on = CASE WHEN pausing.yes THEN $7::bigint WHEN resumed.yes THEN NULL "
    "ELSE $6::bigint END, "
    "modified_on = $7::bigint, lease_owner = NULL, lease_expires = NULL FROM ready, pausing, "
    "resumed WHERE pk = $1 AND generation = $2 RETURNING ready.woken OR resumed.yes"
)
# A run that completes while a pause was written (waitingForPause; its notice had not reached
# the runner) parks the instance paused instead: the end is a step boundary too (§3.2), and
# resumed, the replay returns at once.
_PAUSING_AT_END = "(instances.status = 'waitingForPause' AND f.status = 'complete')"
FINISH_MANY = (
    f"UPDATE instances SET status = CASE WHEN {_PAUSING_AT_END} THEN 'paused' ELSE f.status END, "
    f"output = CASE WHEN {_PAUSING_AT_END} THEN NULL ELSE f.output END, "
    "error_name = f.error_name, error_message = f.error_message, "
    f"ended_on = CASE WHEN {_PAUSING_AT_END} THEN NULL ELSE f.now END, "
    f"paused_on = CASE WHEN {_PAUSING_AT_END} THEN f.now ELSE paused_on END, "
    "modified_on = f.now, wake_at = NULL, wake_kind = NULL, lease_owner = NULL, "
    f"lease_expires = NULL, expires_on = CASE WHEN {_PAUSING_AT_END} THEN NULL "
    "ELSE f.now + CASE WHEN f.status = 'complete' "
    f"THEN COALESCE(success_retention_ms, {_RETAIN}) "
    f"ELSE COALESCE(error_retention_ms, {_RETAIN}) END END "
    "FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "$7::bigint[]) AS f (pk, generation, status, output, error_name, error_message, now) "
    "WHERE instances.pk = f.pk AND instances.generation = f.generation RETURNING instances.pk"
)
"""End many instances' runs (each fenced by its generation); answers the pks it ended."""
# The event this wait already took (a retry after a lost reply) or else the oldest free one
# sent by the wait's deadline ($15): one sent after it is not this wait's, however late the
# replay comes (§3.5).
# The instance's row is locked first, as every path that changes events does: the trigger that
# counts untaken events then updates a row this statement already holds.
CONSUME_EVENT = (
    "WITH fence AS (SELECT pk FROM instances WHERE pk = $1 AND generation = $2 "
    "FOR NO KEY UPDATE), "
    f"prior AS (SELECT {EVENT_COLUMNS} FROM events WHERE instance_pk = $1 AND type = $3 "
    "AND consumed_by = $4 AND EXISTS (SELECT 1 FROM fence) ORDER BY id LIMIT 1), "
    "pick AS (SELECT id FROM events WHERE instance_pk = $1 AND type = $3 "
    "AND consumed_by IS NULL AND created_on <= $15 AND EXISTS (SELECT 1 FROM fence) "
    "AND NOT EXISTS (SELECT 1 FROM prior) ORDER BY id LIMIT 1 FOR UPDATE), "
    "taken AS (UPDATE events SET consumed_by = $4 WHERE id IN (SELECT id FROM pick) "
    f"RETURNING {EVENT_COLUMNS}), "
    "got AS (SELECT * FROM taken UNION ALL SELECT * FROM prior), "
    f"saved AS (INSERT INTO steps ({STEP_COLUMNS}) SELECT $1::bigint, $4::text, $5::integer, "
    "$6::text, $7::text, 'complete', $8::bigint, $9::bigint, $10::text, $11::text, "
    "got.payload, $12::text, $13::text, $14::text, got.created_on, $16::text FROM got "
    f"{_UPSERT_STEP}) "
    "SELECT EXISTS (SELECT 1 FROM fence) AS live, "
    + ", ".join(f"got.{c.strip()}" for c in EVENT_COLUMNS.split(","))
    + " FROM (VALUES (1)) AS one (x) LEFT JOIN got ON TRUE"
)

# -- control -------------------------------------------------------------------------------
LOCK_EVENT_TARGET = (
    f"SELECT {INSTANCE_COLUMNS}, buffered_bytes FROM instances WHERE pk = $1 FOR UPDATE"
)
"""The instance an event is sent to, and what its untaken events weigh, its row locked."""
INSERT_EVENT = "INSERT INTO events (instance_pk, type, payload, created_on) VALUES ($1, $2, $3, $4)"
# A wait past its deadline needs no event: it has timed out, though no run has said so yet.
_A_WAIT_NEEDS_IT = (
    "EXISTS (SELECT 1 FROM steps WHERE instance_pk = $1 AND kind = 'wait' "
    "AND status = 'waiting' AND event_type = $2 AND wake_at >= $3)"
)
WAKE_FOR_EVENT = (
    "UPDATE instances SET wake_at = $3, modified_on = $3 WHERE pk = $1 AND status = 'waiting' "
    f"AND {_A_WAIT_NEEDS_IT}"
)
CLAIM_WOKEN = (
    "UPDATE instances SET status = 'running', started_on = COALESCE(started_on, $3), "
    "modified_on = $3, wake_at = NULL, wake_kind = NULL, generation = generation + 1, "
    "lease_owner = $4, lease_expires = $5 WHERE pk = $1 AND status = 'waiting' "
    "AND workflow_id NOT IN (SELECT id FROM workflows WHERE concurrency_limit IS NOT NULL) "
    f"AND {_A_WAIT_NEEDS_IT} RETURNING {INSTANCE_COLUMNS}"
)
"""Claim an instance that an event (just inserted) wakes, unless its workflow has a
concurrency limit; run in the transaction that locked the instance's row."""
HAND_TO_WAIT = (
    "WITH wait AS (SELECT key FROM steps WHERE instance_pk = $1 AND kind = 'wait' "
    "AND status = 'waiting' AND event_type = $2 AND wake_at >= $3 ORDER BY seq LIMIT 1), "
    "picked AS (SELECT id, payload, created_on FROM events WHERE instance_pk = $1 "
    "AND type = $2 AND consumed_by IS NULL ORDER BY id LIMIT 1), "
    "taken AS (UPDATE events SET consumed_by = (SELECT key FROM wait) "
    "WHERE id = (SELECT id FROM picked)) "
    "UPDATE steps SET status = 'complete', end_at = $3, output = (SELECT payload FROM picked), "
    "wake_at = (SELECT created_on FROM picked) "
    "WHERE instance_pk = $1 AND key = (SELECT key FROM wait)"
)
"""Give the oldest unconsumed event of a type to the first wait for it, as the runner's
``consume_event`` would when its replay reached that wait (after ``CLAIM_WOKEN``)."""
UPDATE_INSTANCE_IF = (
    "UPDATE instances SET {sets} WHERE pk = $1 AND status = ANY($2::text[]) "
    f"RETURNING {INSTANCE_COLUMNS}"
)
_TERMINABLE = "status NOT IN " + _FINISHED + " {expect}"
TERMINATE = (
    "UPDATE instances SET status = 'terminated', ended_on = $1, modified_on = $1, "
    "wake_at = NULL, wake_kind = NULL, paused_on = NULL, generation = generation + 1, "
    f"expires_on = $1 + COALESCE(error_retention_ms, {_RETAIN}) "
    "WHERE pk IN (SELECT pk FROM instances WHERE pk = ANY($2::bigint[]) "
    f"AND {_TERMINABLE} ORDER BY pk FOR UPDATE) AND {_TERMINABLE} "
    f"RETURNING {INSTANCE_COLUMNS}"
)
ADD_TERMINATION_STEPS = (
    "INSERT INTO steps (instance_pk, key, seq, kind, name, status, start_at, attempts) "
    "SELECT t.pk, 'termination', COALESCE((SELECT MAX(seq) FROM steps s "
    "WHERE s.instance_pk = t.pk), 0) + 1, 'termination', 'termination', 'complete', $2, '[]' "
    f"FROM unnest($1::bigint[]) AS t (pk) {_UPSERT_STEP}"
)
RESUME = (
    "WITH target AS (SELECT pk AS target_pk, paused_on AS target_paused_on FROM instances "
    "WHERE pk = $1 AND status = 'paused' FOR UPDATE), "
    "shifted AS (UPDATE steps SET wake_at = wake_at + "
    "GREATEST(0, $2::bigint - COALESCE(target_paused_on, $2::bigint)) FROM target "
    "WHERE instance_pk = target_pk AND status IN ('waiting', 'running') "
    "AND wake_at IS NOT NULL) "
    "UPDATE instances SET status = 'queued', paused_on = NULL, wake_at = NULL, "
    f"wake_kind = {_KEEP_RECOVERED}, modified_on = $2 FROM target WHERE pk = target_pk "
    f"RETURNING {INSTANCE_COLUMNS}"
)
# A restart runs the workflow's code as it is now, and says so: the instance takes the
# workflow's current version (spec §3.3 leaves the version at restart open).
_CURRENT_VERSION = "(SELECT w.version_id FROM workflows w WHERE w.id = instances.workflow_id)"
RESTART = (
    "UPDATE instances SET status = 'queued', started_on = NULL, ended_on = NULL, "
    "output = NULL, error_name = NULL, error_message = NULL, expires_on = NULL, "
    "wake_at = NULL, wake_kind = NULL, paused_on = NULL, generation = generation + 1, "
    f"modified_on = $1, version_id = {_CURRENT_VERSION} WHERE pk = $2 "
    f"RETURNING {INSTANCE_COLUMNS}"
)
DELETE_ALL_EVENTS = "DELETE FROM events WHERE instance_pk = $1"
DELETE_ALL_STEPS = "DELETE FROM steps WHERE instance_pk = $1"
DELETE_EVENTS_OF_WIPED = (
    "DELETE FROM events WHERE instance_pk = $1 AND (consumed_by IS NULL OR consumed_by IN "
    "(SELECT key FROM steps WHERE instance_pk = $1 AND seq >= $2))"
)
DELETE_STEPS_FROM = (
    "DELETE FROM steps WHERE instance_pk = $1 AND (seq >= $2 OR kind = 'termination')"
)
RUNNING_STEPS = "SELECT key, attempts FROM steps WHERE instance_pk = $1 AND status = 'running'"
SET_STEP_ATTEMPTS = "UPDATE steps SET attempts = $1 WHERE instance_pk = $2 AND key = $3"
DELETE_INSTANCES = "DELETE FROM instances WHERE pk = ANY($1::bigint[]) RETURNING pk"
SELECT_PKS_BY_STATUS = (
    "SELECT pk FROM instances WHERE workflow_id = $1 AND status = ANY($2::text[]) "
    "AND created_on <= $4 ORDER BY pk LIMIT $3"
)
DELETE_EXPIRED = (
    "DELETE FROM instances WHERE pk IN (SELECT pk FROM instances WHERE expires_on <= $1 "
    "LIMIT $2 FOR UPDATE SKIP LOCKED)"
)

# -- notices -------------------------------------------------------------------------------
NOTICE_CHANNEL = "stepline_notices"
PUBLISH = "SELECT pg_notify($1, $2)"

# -- schedules -----------------------------------------------------------------------------
SCHEDULES_OF = (
    "SELECT workflow_id, cron, next_fire_at FROM schedules WHERE workflow_id = ANY($1::text[]) "
    "ORDER BY workflow_id, cron"
)
LOCK_WORKFLOW_SCHEDULES = "SELECT pg_advisory_xact_lock(hashtext('stepline-schedules:' || $1))"
LOCK_SCHEDULES_OF = "SELECT 1 FROM schedules WHERE workflow_id = $1 ORDER BY cron FOR UPDATE"
"""A workflow's schedules' rows, taken before the workflow's own row: a cron firing holds its
schedule's row when it inserts its instance, which updates the workflow's (``triggered_on``).
A registration that changes the workflow and replaces its schedules, or a deletion (whose
cascade reaches the schedules last), took the workflow's row first: each deadlocked with it."""
LOCK_INSTANCES_OF = "SELECT 1 FROM instances WHERE workflow_id = $1 ORDER BY pk FOR UPDATE"
"""A workflow's instances' rows in pk order, as a batch of step writes locks them, before its
deletion's cascade, which takes them in the order it finds them: it deadlocked with one."""
COUNT_ACCOUNT_SCHEDULES = (
    "SELECT COUNT(*) FROM schedules s JOIN workflows w ON w.id = s.workflow_id "
    "WHERE w.account_id = $1 AND w.id <> $2"
)
DELETE_SCHEDULES = "DELETE FROM schedules WHERE workflow_id = $1"
INSERT_SCHEDULES = (
    "INSERT INTO schedules (workflow_id, cron, next_fire_at) "
    "SELECT $1, * FROM unnest($2::text[], $3::bigint[])"
)
DUE_SCHEDULES = (
    "SELECT workflow_id, cron, next_fire_at FROM schedules WHERE next_fire_at <= $1 "
    "ORDER BY next_fire_at LIMIT $2"
)
ADVANCE_SCHEDULE = (
    "UPDATE schedules SET next_fire_at = $1 WHERE workflow_id = $2 AND cron = $3 "
    "AND next_fire_at = $4"
)
NEXT_SCHEDULE_FIRE = "SELECT MIN(next_fire_at) FROM schedules"

# -- time ----------------------------------------------------------------------------------
DATABASE_TIME_MS = "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint"

# -- tokens --------------------------------------------------------------------------------
INSERT_TOKEN = f"INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
TOKEN_BY_HASH = f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_hash = $1"
