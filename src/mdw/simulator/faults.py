"""Seeded fault decisions: which request fails how, and which served bars are corrupted.

One uniform draw per request picks at most one request fault, so with the same seed and the
same request order the same requests fail. The draws come from their own stream, separate from
the market's, so turning faults on never changes the data.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import numpy as np

from mdw.domain import BarBatch
from mdw.simulator.config import FaultConfig

ERROR_STATUSES = (500, 502, 503, 504)
REQUEST_FAULTS = ("error", "reset", "hang", "truncate", "status_error")


class FaultInjector:
    def __init__(self, seed: int, config: FaultConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._rng = random.Random(seed * 1_000_003 + 17)
        self._bar_rng = np.random.default_rng([seed, 0xBAD])
        self._stall_rng = random.Random(seed * 1_000_003 + 29)
        self.clock = clock
        self.started = clock()
        self.config = config
        self.stalls = 0  # stalls since the settings were last set (for stall_limit)

    def set(self, config: FaultConfig) -> None:
        """Replace the fault settings; an outage window restarts its clock now, the stall count too."""
        if config.outage_start_s is not None:
            self.started = self.clock()
        self.config = config
        self.stalls = 0

    def stall(self) -> bool:
        """Block the calling thread (the event loop) for ``stall_ms`` if this request draws a stall.

        Blocking on purpose, as a CPU-bound answer does: nothing else is read or answered meanwhile.
        """
        cfg = self.config
        if cfg.stall_rate <= 0 or cfg.stall_ms <= 0:
            return False
        if cfg.stall_limit is not None and self.stalls >= cfg.stall_limit:
            return False
        if self._stall_rng.random() >= cfg.stall_rate:
            return False
        self.stalls += 1
        time.sleep(cfg.stall_ms / 1000.0)
        return True

    def in_outage(self) -> bool:
        cfg = self.config
        if cfg.outage:
            return True
        if cfg.outage_start_s is None:
            return False
        elapsed = self.clock() - self.started
        return cfg.outage_start_s <= elapsed < cfg.outage_start_s + cfg.outage_duration_s

    def latency_s(self, base_ms: float, jitter_ms: float) -> float:
        cfg = self.config
        total = base_ms + cfg.latency_ms
        jit = jitter_ms + cfg.jitter_ms
        if jit > 0:
            total += self._rng.uniform(0.0, jit)
        return total / 1000.0

    def draw(self) -> str | None:
        """The request fault for this request, or None."""
        cfg = self.config
        if cfg.request_fault_rate <= 0:
            return None
        u = self._rng.random()
        for name, rate in zip(REQUEST_FAULTS, (cfg.error_rate, cfg.reset_rate, cfg.hang_rate,
                                               cfg.truncate_rate, cfg.status_error_rate), strict=True):
            if u < rate:
                return name
            u -= rate
        return None

    def error_status(self) -> int:
        return self._rng.choice(ERROR_STATUSES)

    def corrupt(self, batch: BarBatch) -> tuple[BarBatch, int]:
        """Swap high and low in a random ``invalid_bar_rate`` share of the bars (making h < l)."""
        rate = self.config.invalid_bar_rate
        if rate <= 0 or not len(batch):
            return batch, 0
        mask = self._bar_rng.random(len(batch)) < rate
        count = int(mask.sum())
        if not count:
            return batch, 0
        h, lo = batch.h.copy(), batch.l.copy()
        # new high just under the old low, new low at the old high: h < l even for flat bars
        h[mask], lo[mask] = batch.l[mask] * 0.999, batch.h[mask]
        cols = batch.columns() | {"h": h, "l": lo}
        return BarBatch.from_columns(batch.ticker, batch.timeframe, cols, batch.source), count

    def bad_rows(self, count: int) -> list[int]:
        """The bars (of ``count`` served) that get the malformed value ``bad_value``, drawn per bar."""
        rate = self.config.bad_value_rate
        if rate <= 0 or not count:
            return []
        return np.flatnonzero(self._bar_rng.random(count) < rate).tolist()
