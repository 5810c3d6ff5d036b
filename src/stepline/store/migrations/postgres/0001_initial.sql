-- Stepline on PostgreSQL: the first schema, the SQLite schema in PostgreSQL types.
-- Times are BIGINT milliseconds since the epoch; JSON values stay TEXT so that their sizes
-- are the bytes the limits count, as on SQLite.
CREATE TABLE workflows (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    class_name TEXT NOT NULL,
    script_name TEXT NOT NULL,
    version_id TEXT NOT NULL,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    triggered_on BIGINT,
    step_limit INTEGER NOT NULL,
    success_retention_ms BIGINT,
    error_retention_ms BIGINT,
    concurrency_limit INTEGER,
    terminator_running BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (account_id, name)
);

CREATE TABLE versions (
    id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    class_name TEXT NOT NULL,
    script_name TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    created_on BIGINT NOT NULL,
    step_limit INTEGER NOT NULL,
    success_retention_ms BIGINT,
    error_retention_ms BIGINT,
    concurrency_limit INTEGER,
    -- SQLite's rowid: the order versions were written in, for ties on created_on.
    seq BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX versions_by_workflow ON versions (workflow_id, created_on);

CREATE TABLE instances (
    pk BIGSERIAL PRIMARY KEY,
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    version_id TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    started_on BIGINT,
    ended_on BIGINT,
    trigger_source TEXT NOT NULL,
    output TEXT,
    error_name TEXT,
    error_message TEXT,
    success_retention_ms BIGINT,
    error_retention_ms BIGINT,
    expires_on BIGINT,
    wake_at BIGINT,
    wake_kind TEXT,
    paused_on BIGINT,
    generation BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires BIGINT,
    schedule_cron TEXT,
    scheduled_time BIGINT,
    UNIQUE (workflow_id, id)
);
CREATE INDEX instances_by_created ON instances (workflow_id, created_on, pk);
CREATE INDEX instances_by_status ON instances (workflow_id, status);
CREATE INDEX instances_runnable ON instances (status, wake_at);
CREATE INDEX instances_by_lease ON instances (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX instances_by_expiry ON instances (expires_on) WHERE expires_on IS NOT NULL;
-- Claims take queued instances in pk order and due sleepers by wake time.
CREATE INDEX instances_queued ON instances (pk) WHERE status = 'queued';
CREATE INDEX instances_waiting ON instances (wake_at) WHERE status = 'waiting';

CREATE TABLE steps (
    instance_pk BIGINT NOT NULL REFERENCES instances (pk) ON DELETE CASCADE,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    start_at BIGINT NOT NULL,
    end_at BIGINT,
    config TEXT,
    attempts TEXT NOT NULL,
    output TEXT,
    error_name TEXT,
    error_message TEXT,
    error_class TEXT,
    wake_at BIGINT,
    event_type TEXT,
    PRIMARY KEY (instance_pk, key)
);

CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    instance_pk BIGINT NOT NULL REFERENCES instances (pk) ON DELETE CASCADE,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_on BIGINT NOT NULL,
    consumed_by TEXT
);
CREATE INDEX events_pending ON events (instance_pk, type, id) WHERE consumed_by IS NULL;
CREATE INDEX events_by_instance ON events (instance_pk);

CREATE TABLE schedules (
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    cron TEXT NOT NULL,
    next_fire_at BIGINT NOT NULL,
    PRIMARY KEY (workflow_id, cron)
);
CREATE INDEX schedules_by_fire ON schedules (next_fire_at);

CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    can_write BOOLEAN NOT NULL,
    name TEXT NOT NULL,
    created_on BIGINT NOT NULL
);
