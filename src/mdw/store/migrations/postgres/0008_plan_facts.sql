-- mdw schema v8 (PostgreSQL): what mdw learned about the key's plan, and which windows were settled.
-- A plan fact is keyed by the plan setting in force when it was learned (its spec), so changing
-- MDW_PLAN (or MDW_HISTORY) starts afresh. ``history`` holds the learned depth (e.g. 2y, 730d):
-- the first day a key may ask for moves with the calendar, the depth does not.
CREATE TABLE plan_facts (
    plan          TEXT    NOT NULL,
    fact          TEXT    NOT NULL,   -- history
    value         TEXT    NOT NULL,
    message       TEXT    NOT NULL,   -- the vendor's words when it was learned
    request_id    TEXT    NOT NULL,
    learned_at_ms BIGINT NOT NULL,
    PRIMARY KEY (plan, fact)
);

-- Windows re-fetched once after the close to pick up the vendor's revisions (the settle pass):
-- each window is settled once.
CREATE TABLE settled_windows (
    ticker        TEXT    NOT NULL,
    timeframe     TEXT    NOT NULL,
    start_ms      BIGINT NOT NULL,
    end_ms        BIGINT NOT NULL CHECK (end_ms > start_ms),
    settled_at_ms BIGINT NOT NULL,
    bars_updated  BIGINT NOT NULL,
    PRIMARY KEY (ticker, timeframe, start_ms)
);
