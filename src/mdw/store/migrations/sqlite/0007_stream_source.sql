-- mdw schema v7 (SQLite): bars from the vendor's WebSocket carry source 'stream' (provisional
-- until a REST pass confirms them: docs/stream.md). SQLite cannot change a CHECK constraint in
-- place, so the bars table is rebuilt once, as in 0003.

CREATE TABLE bars_v7 (
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
              CHECK (source = 'rest' OR source = 'grouped' OR source = 'derived' OR source = 'flatfile'
                     OR source = 'stream'),
    PRIMARY KEY (ticker, timeframe, t)
) WITHOUT ROWID;

INSERT INTO bars_v7 (ticker, timeframe, t, o, h, l, c, v, vw, n, source)
    SELECT ticker, timeframe, t, o, h, l, c, v, vw, n, source FROM bars;

DROP TABLE bars;

ALTER TABLE bars_v7 RENAME TO bars;
