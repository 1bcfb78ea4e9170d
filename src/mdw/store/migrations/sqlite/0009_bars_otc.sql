-- mdw schema v9 (SQLite): the vendor's per-bar OTC flag (``"otc": true`` on OTC names' bars).
-- 1 or 0 as the vendor sent it, NULL where the bar carried no flag (listed names, flat files,
-- derived bars of mixed flags, every bar stored before this version). A nullable column without a
-- default is added to the schema only: no row is rewritten.

ALTER TABLE bars ADD COLUMN otc INTEGER;
