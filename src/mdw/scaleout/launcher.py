"""The service's ``DistributedLauncher``: ``POST /v1/backfills`` with ``distributed: true``.

``submit`` defers the plan's windows to the ``mdw worker`` processes and returns the run id at
once; a named background task follows the jobs and settles the run's row in ``runs`` (status and
the aggregated report), exactly as ``mdw backfill --distributed`` does.
"""

from __future__ import annotations

import asyncio
import logging

from mdw.backfill.plan import BackfillSpec
from mdw.config import Settings
from mdw.scaleout.distributed import Deferred, defer_backfill, follow_run, require_postgres

log = logging.getLogger(__name__)


class PgLauncher:
    """Defers backfills to the workers through the warehouse's PostgreSQL.

    Raises (from the constructor):
        UsageError: the warehouse is not PostgreSQL.
    """

    def __init__(self, settings: Settings) -> None:
        require_postgres(settings.database_url)
        self.settings = settings
        self._followers: set[asyncio.Task[None]] = set()

    async def submit(self, spec: BackfillSpec, *, actor: str) -> str:
        deferred = await defer_backfill(self.settings, spec)
        log.info("distributed backfill %s deferred by %s: %d new jobs, %d already queued", deferred.run_id,
                 actor, deferred.new, deferred.existing, extra={"action": "scaleout.submit"})
        task = asyncio.create_task(self._follow(deferred), name=f"follow-{deferred.run_id}")
        self._followers.add(task)
        task.add_done_callback(self._followers.discard)
        return deferred.run_id

    async def _follow(self, deferred: Deferred) -> None:
        from mdw.store import open_store

        store = await open_store(self.settings.database_url)
        try:
            await follow_run(self.settings, store, deferred)
        finally:
            await store.close()

    async def aclose(self) -> None:
        """Stop following (the jobs keep running on the workers; the run row stays ``running``)."""
        for task in list(self._followers):
            task.cancel()
        await asyncio.gather(*self._followers, return_exceptions=True)
