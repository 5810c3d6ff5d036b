-- Stepline on SQLite: the first schema. Times are integer milliseconds since the epoch.
CREATE TABLE workflows (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    class_name TEXT NOT NULL,
    script_name TEXT NOT NULL,
    version_id TEXT NOT NULL,
    created_on INTEGER NOT NULL,
    modified_on INTEGER NOT NULL,
    triggered_on INTEGER,
    step_limit INTEGER NOT NULL,
    success_retention_ms INTEGER,
    error_retention_ms INTEGER,
    concurrency_limit INTEGER,
    terminator_running INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_id, name)
);

CREATE TABLE versions (
    id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    class_name TEXT NOT NULL,
    script_name TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    created_on INTEGER NOT NULL,
    step_limit INTEGER NOT NULL,
    success_retention_ms INTEGER,
    error_retention_ms INTEGER,
    concurrency_limit INTEGER
);
CREATE INDEX versions_by_workflow ON versions (workflow_id, created_on);

CREATE TABLE instances (
    pk INTEGER PRIMARY KEY,
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    version_id TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    created_on INTEGER NOT NULL,
    modified_on INTEGER NOT NULL,
    started_on INTEGER,
    ended_on INTEGER,
    trigger_source TEXT NOT NULL,
    output TEXT,
    error_name TEXT,
    error_message TEXT,
    success_retention_ms INTEGER,
    error_retention_ms INTEGER,
    expires_on INTEGER,
    wake_at INTEGER,
    wake_kind TEXT,
    paused_on INTEGER,
    generation INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires INTEGER,
    UNIQUE (workflow_id, id)
);
CREATE INDEX instances_by_created ON instances (workflow_id, created_on, pk);
CREATE INDEX instances_by_status ON instances (workflow_id, status);
CREATE INDEX instances_runnable ON instances (status, wake_at);
CREATE INDEX instances_by_lease ON instances (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX instances_by_expiry ON instances (expires_on) WHERE expires_on IS NOT NULL;

CREATE TABLE steps (
    instance_pk INTEGER NOT NULL REFERENCES instances (pk) ON DELETE CASCADE,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    start_at INTEGER NOT NULL,
    end_at INTEGER,
    config TEXT,
    attempts TEXT NOT NULL,
    output TEXT,
    error_name TEXT,
    error_message TEXT,
    error_class TEXT,
    wake_at INTEGER,
    event_type TEXT,
    -- A rowid table: new steps append to the end of the file instead of landing on the
    -- leaf pages of as many instances as are running, which made each commit rewrite
    -- hundreds of pages.
    UNIQUE (instance_pk, key)
);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    instance_pk INTEGER NOT NULL REFERENCES instances (pk) ON DELETE CASCADE,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_on INTEGER NOT NULL,
    consumed_by TEXT
);
CREATE INDEX events_pending ON events (instance_pk, type, id) WHERE consumed_by IS NULL;
CREATE INDEX events_by_instance ON events (instance_pk);

CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    can_write INTEGER NOT NULL,
    name TEXT NOT NULL,
    created_on INTEGER NOT NULL
);
