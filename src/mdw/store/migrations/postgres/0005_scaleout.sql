-- mdw schema v4 (PostgreSQL): the tables mdw keeps beside procrastinate's queue, and the shared
-- rate budget. Databases that ran a scale-out worker before v4 already hold mdw_job_results
-- (created by the worker itself then), so this step adopts that table instead of failing on it.

-- One rate budget per vendor API key (name = a digest of the key, never the key), shared by every
-- process that uses the key: workers, `mdw serve`, CLI backfills, the Python API. ``state`` is the
-- limiter's own JSON (arrivals in the window, the rate in force, the Retry-After pause); it is read
-- and rewritten under the row lock by mdw.budget.
CREATE TABLE rate_budget (
    name          text PRIMARY KEY,
    configured    double precision NOT NULL,
    period_s      double precision NOT NULL,
    state         jsonb NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The grant-log limiter this budget replaces.
DROP FUNCTION IF EXISTS mdw_limiter_reserve(text, integer, double precision, bigint, bigint,
                                            double precision, double precision, double precision);
DROP FUNCTION IF EXISTS mdw_limiter_throttle(text, double precision, double precision,
                                             double precision, double precision);
DROP TABLE IF EXISTS mdw_rate_limiter;

-- One row per finished job (a retried job overwrites its row and takes a new seq), read
-- incrementally by run followers (seq > last seen) and pruned after the retention period.
CREATE TABLE IF NOT EXISTS mdw_job_results (
    job_id      bigint PRIMARY KEY,
    run_id      text NOT NULL,
    kind        text NOT NULL,
    ticker      text NOT NULL DEFAULT '',
    timeframe   text NOT NULL DEFAULT '',
    start_ms    bigint NOT NULL DEFAULT 0,
    end_ms      bigint NOT NULL DEFAULT 0,
    worker      text NOT NULL,
    ok          boolean NOT NULL,
    requests    integer NOT NULL DEFAULT 0,
    bars        bigint NOT NULL DEFAULT 0,
    inserted    bigint NOT NULL DEFAULT 0,
    updated     bigint NOT NULL DEFAULT 0,
    api_s       double precision NOT NULL DEFAULT 0,
    db_s        double precision NOT NULL DEFAULT 0,
    error       text NOT NULL DEFAULT '',
    detail      jsonb NOT NULL DEFAULT '{}',
    finished_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE mdw_job_results ADD COLUMN IF NOT EXISTS retries integer NOT NULL DEFAULT 0;
ALTER TABLE mdw_job_results ADD COLUMN IF NOT EXISTS rate_limited integer NOT NULL DEFAULT 0;
ALTER TABLE mdw_job_results ADD COLUMN seq bigserial;
ALTER TABLE mdw_job_results ADD COLUMN queueing_lock text NOT NULL DEFAULT '';
ALTER TABLE mdw_job_results ADD COLUMN series text[] NOT NULL DEFAULT '{}';
CREATE UNIQUE INDEX mdw_job_results_seq_idx ON mdw_job_results (seq);
CREATE INDEX IF NOT EXISTS mdw_job_results_finished_idx ON mdw_job_results (finished_at);
CREATE INDEX mdw_job_results_lock_idx ON mdw_job_results (queueing_lock, finished_at) WHERE ok;
DROP INDEX IF EXISTS mdw_job_results_run_idx;

-- Live workers as mdw sees them (procrastinate's own registry is read only through its API).
CREATE TABLE mdw_workers (
    name          text PRIMARY KEY,
    concurrency   integer NOT NULL,
    rate_limit    text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now()
);

-- The version of procrastinate's schema in this database, so a newer procrastinate applies
-- exactly its pending migrations (procrastinate keeps no version of its own).
CREATE TABLE queue_schema (
    component   text PRIMARY KEY,
    version     text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
