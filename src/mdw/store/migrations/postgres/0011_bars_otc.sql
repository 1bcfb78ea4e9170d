-- mdw schema v11 (PostgreSQL): the vendor's per-bar OTC flag (``"otc": true`` on OTC names' bars).
-- true or false as the vendor sent it, NULL where the bar carried no flag (listed names, flat
-- files, derived bars of mixed flags, every bar stored before this version). Added on the
-- partitioned parent (or hypertable) it reaches every partition or chunk; a nullable column
-- without a default is a catalog change only, no row is rewritten.

ALTER TABLE bars ADD COLUMN IF NOT EXISTS otc BOOLEAN;
