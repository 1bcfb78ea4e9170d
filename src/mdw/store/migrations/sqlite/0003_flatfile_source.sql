-- mdw schema v3 (SQLite): bars from the vendor's flat files carry source 'flatfile'.
-- SQLite cannot change a CHECK constraint in place, so the bars table is rebuilt once (ALTER
-- TABLE's documented procedure: new table, copy, drop, rename). Nothing else refers to bars: no
-- index, trigger or view to recreate.

CREATE TABLE bars_v3 (
    ticker    TEXT    NOT NULL,
    timeframe TEXT    NOT NULL,
    t         INTEGER NOT NULL,
    o         REAL    NOT NULL,
    h         REAL    NOT NULL,
    l         REAL    NOT NULL,
    c         REAL    NOT NULL,
    v         REAL,
    vw        REAL,
    n         INTEGER NOT NULL DEFAULT 0,
    -- OR, not IN: SQLite evaluates a CHECK ... IN (list) per row at twice the insert cost.
    source    TEXT    NOT NULL DEFAULT 'rest'
              CHECK (source = 'rest' OR source = 'grouped' OR source = 'derived' OR source = 'flatfile'),
    PRIMARY KEY (ticker, timeframe, t)
) WITHOUT ROWID;

INSERT INTO bars_v3 (ticker, timeframe, t, o, h, l, c, v, vw, n, source)
    SELECT ticker, timeframe, t, o, h, l, c, v, vw, n, source FROM bars;

DROP TABLE bars;

ALTER TABLE bars_v3 RENAME TO bars;
