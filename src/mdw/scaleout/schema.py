"""The scale-out tables: procrastinate's queue schema plus mdw's shared rate budget and job results.

Every worker applies this on start, so it must be idempotent and safe when N workers start at the
same moment: the DDL runs under one transaction-scoped advisory lock, procrastinate's schema is
applied only when its jobs table is missing, and mdw's own objects use ``IF NOT EXISTS`` /
``CREATE OR REPLACE``.
"""

from __future__ import annotations

import psycopg

from mdw.errors import StoreError

# An arbitrary constant: the advisory lock that serialises scale-out DDL across workers.
DDL_LOCK_KEY = 7_310_042_017

LIMITER_DDL = """
CREATE TABLE IF NOT EXISTS mdw_rate_limiter (
    name          text PRIMARY KEY,
    configured    double precision NOT NULL,   -- the plan's N (after scaling, see pglimiter)
    period_s      double precision NOT NULL,   -- the plan's window
    window_s      double precision NOT NULL,   -- period plus the jitter margin
    rate          double precision NOT NULL,   -- AIMD-controlled N in force (<= configured)
    paused_until  double precision NOT NULL DEFAULT 0,  -- epoch seconds on the database clock
    last_cut      double precision NOT NULL DEFAULT 0,
    successes     bigint NOT NULL DEFAULT 0,   -- progress toward the next additive increase
    grants        double precision[] NOT NULL DEFAULT '{}',  -- last grant times, ascending
    granted_total bigint NOT NULL DEFAULT 0,
    limited_total bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Reserve up to p_want request starts (epoch seconds, database clock). For n = floor(rate):
--   g >= now + lead, g >= paused_until, g >= the previous grant + spacing, g >= grants[-n] + window_s,
-- so any window of window_s seconds holds at most n grants, whichever worker asked. Grants
-- further than p_horizon ahead are not handed out: the caller comes back in retry_in seconds
-- (computed from the deficit, never polled), so a 429 cut reaches every worker within a horizon.
CREATE OR REPLACE FUNCTION mdw_limiter_reserve(
    p_name text, p_want integer, p_horizon double precision, p_successes bigint,
    p_run_length bigint, p_step double precision, p_lead double precision, p_spacing_cap double precision)
RETURNS TABLE(out_grants double precision[], out_retry_in double precision, out_rate double precision,
              out_now double precision)
LANGUAGE plpgsql AS $$
DECLARE
    r mdw_rate_limiter%ROWTYPE;
    now_s double precision := extract(epoch FROM clock_timestamp());
    arr double precision[];
    granted double precision[] := '{}';
    len integer;
    n integer;
    keep integer;
    g double precision;
    wait double precision := 0;
BEGIN
    SELECT * INTO r FROM mdw_rate_limiter WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'mdw rate limiter % is not configured', p_name;
    END IF;
    -- Additive increase: the successes reported since the caller's last reservation.
    IF p_successes > 0 AND r.rate < r.configured THEN
        r.successes := r.successes + p_successes;
        WHILE r.successes >= p_run_length AND r.rate < r.configured LOOP
            r.successes := r.successes - p_run_length;
            r.rate := least(r.configured, r.rate + p_step);
        END LOOP;
        IF r.rate >= r.configured THEN
            r.successes := 0;
        END IF;
    END IF;
    n := greatest(1, floor(r.rate + 1e-9)::integer);
    arr := r.grants;
    len := coalesce(array_length(arr, 1), 0);
    FOR i IN 1..greatest(p_want, 0) LOOP
        g := greatest(now_s + p_lead, r.paused_until);
        IF len > 0 THEN
            -- Spacing: a window's budget is not fired as one burst that queues at the vendor
            -- (a queued burst is stamped late and eats into the next window).
            g := greatest(g, arr[len] + least(r.window_s / n, p_spacing_cap));
        END IF;
        IF len >= n THEN
            g := greatest(g, arr[len - n + 1] + r.window_s);
        END IF;
        IF g > now_s + p_horizon THEN
            wait := g - now_s - p_horizon;
            EXIT;
        END IF;
        arr := arr || g;
        len := len + 1;
        granted := granted || g;
    END LOOP;
    keep := greatest(1, ceil(r.configured)::integer);
    IF len > keep THEN
        arr := arr[len - keep + 1 : len];
    END IF;
    UPDATE mdw_rate_limiter
       SET grants = arr, rate = r.rate, successes = r.successes,
           granted_total = granted_total + coalesce(array_length(granted, 1), 0),
           updated_at = now()
     WHERE name = p_name;
    out_grants := granted;
    out_retry_in := wait;
    out_rate := r.rate;
    out_now := now_s;
    RETURN NEXT;
END;
$$;

-- A 429 seen by any worker: cut the shared rate (at most once per p_cut_interval, so one burst of
-- 429s from requests already in flight counts once) and pause every worker for Retry-After.
CREATE OR REPLACE FUNCTION mdw_limiter_throttle(
    p_name text, p_retry_after double precision, p_decrease double precision,
    p_floor double precision, p_cut_interval double precision)
RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    now_s double precision := extract(epoch FROM clock_timestamp());
    new_rate double precision;
BEGIN
    UPDATE mdw_rate_limiter
       SET rate = CASE WHEN now_s - last_cut >= p_cut_interval
                       THEN greatest(p_floor, rate * p_decrease) ELSE rate END,
           last_cut = CASE WHEN now_s - last_cut >= p_cut_interval THEN now_s ELSE last_cut END,
           successes = 0,
           paused_until = CASE WHEN p_retry_after > 0
                               THEN greatest(paused_until, now_s + p_retry_after) ELSE paused_until END,
           limited_total = limited_total + 1,
           updated_at = now()
     WHERE name = p_name
    RETURNING rate INTO new_rate;
    RETURN new_rate;
END;
$$;
"""

RESULTS_DDL = """
CREATE TABLE IF NOT EXISTS mdw_job_results (
    job_id      bigint PRIMARY KEY,
    run_id      text NOT NULL,
    kind        text NOT NULL,             -- window | tick
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
    detail      jsonb NOT NULL DEFAULT '{}',   -- noop, api_spans (epoch s the job awaited the vendor)
    finished_at timestamptz NOT NULL DEFAULT now()
);
-- The vendor client's retries and 429s for the job (added after the table first shipped).
ALTER TABLE mdw_job_results ADD COLUMN IF NOT EXISTS retries integer NOT NULL DEFAULT 0;
ALTER TABLE mdw_job_results ADD COLUMN IF NOT EXISTS rate_limited integer NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS mdw_job_results_run_idx ON mdw_job_results (run_id);
CREATE INDEX IF NOT EXISTS mdw_job_results_finished_idx ON mdw_job_results (finished_at);
"""


def libpq_url(url: str) -> str:
    """The libpq form of a warehouse URL (``postgres://`` and driver suffixes normalised)."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    return url


async def _procrastinate_installed(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> bool:
    cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
    row = await cur.fetchone()
    return bool(row and row[0])


async def ensure_schema(url: str, *, limiter: bool = True, queue: bool = True) -> None:
    """Create whatever of the scale-out schema is missing; a no-op when all of it exists.

    Raises:
        StoreError: the database is unreachable or refused the DDL.
    """
    from procrastinate import schema as pschema

    try:
        async with await psycopg.AsyncConnection.connect(libpq_url(url)) as conn, conn.transaction():
            # Workers starting together would race on CREATE; the lock makes the second a no-op.
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
            if queue and not await _procrastinate_installed(conn):
                await conn.execute(pschema.SchemaManager.get_schema().encode())
            if limiter:
                await conn.execute(LIMITER_DDL.encode())
            if queue:
                await conn.execute(RESULTS_DDL.encode())
    except psycopg.Error as exc:
        raise StoreError(f"cannot prepare the scale-out schema: {exc}") from exc
