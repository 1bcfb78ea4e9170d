"""Scale-out: workers on many machines share one plan, one queue and one rate budget in PostgreSQL.

Modules are imported lazily by their users (the CLI, the service), so importing :mod:`mdw` never
pulls in procrastinate or psycopg.
"""

from __future__ import annotations
