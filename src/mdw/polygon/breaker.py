"""Circuit breaker: stop calling a vendor that is down, and find out quickly when it is back.

After ``threshold`` consecutive transient failures the breaker opens and calls fail fast with
:class:`~mdw.errors.VendorUnavailable`. After the cool-down it is half-open: one probe at a time,
up to ``probes`` of them ``probe_gap_s`` apart, so one straggling 5xx as the vendor comes back
does not cost a whole cool-down. A success closes it; a half-open spell whose probes all failed
re-opens it with the cool-down doubled, never above ``cooldown_cap_s``. So after an outage of T
seconds answered by errors, work resumes within about T + ``cooldown_cap_s`` + ``probe_gap_s``
(measured in ``tests/polygon/test_vendor_recovery.py``). 429s are not failures here: they mean
"slower", which is the limiter's job. All its time comes from the injected :class:`Clock`.
"""

from __future__ import annotations

from collections.abc import Callable

from mdw.clock import SYSTEM_CLOCK, Clock
from mdw.errors import VendorUnavailable
from mdw.polygon.events import BreakerState, BreakerTransitionEvent
from mdw.polygon.options import BreakerPolicy

Transition = tuple[int, BreakerState, BreakerState]


class CircuitBreaker:
    """Consecutive-failure breaker with multi-probe half-open spells and a capped cool-down.

    Args:
        policy: threshold, cool-down and its cap, probes per spell and their spacing.
        clock: time source (tests pass a fake one).
        on_transition: called with a frozen event on every state change.
    """

    def __init__(
        self,
        policy: BreakerPolicy = BreakerPolicy(),
        *,
        clock: Clock = SYSTEM_CLOCK,
        on_transition: Callable[[BreakerTransitionEvent], None] | None = None,
        history: int = 100,
    ) -> None:
        self.policy = policy
        self.threshold = max(1, policy.threshold)
        self.base_cooldown_s = policy.cooldown_s
        self.cooldown_cap_s = max(policy.cooldown_s, policy.cooldown_cap_s)
        self.cooldown_s = policy.cooldown_s
        self.probes = max(1, policy.probes)
        self._clock = clock
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_out = False
        self._probe_failures = 0  # failed probes in the current half-open spell
        self._next_probe_at = 0.0  # half-open: no probe before this (the gap after a failed one)
        self._history = history
        self.transitions: list[Transition] = []  # the most recent ``history`` ones
        self.transition_count = 0  # all of them, for a monotonic metrics counter

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose cool-down elapsed still reads open until probed)."""
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_in(self) -> float:
        """Seconds until a probe may go through (0 if one would now, or the breaker is closed)."""
        now = self._clock.monotonic()
        if self._state is BreakerState.OPEN:
            return max(0.0, self._opened_at + self.cooldown_s - now)
        if self._state is BreakerState.HALF_OPEN:
            return max(0.0, self._next_probe_at - now)
        return 0.0

    def before_call(self, url: str | None = None) -> bool:
        """Admit a call or raise; returns True when this call is a half-open probe.

        The caller must then report exactly one of :meth:`record_success`,
        :meth:`record_failure` or :meth:`record_neutral` (``probe=`` the returned flag).

        Raises:
            VendorUnavailable: the breaker is open, a probe is in flight, or the next probe is due later.
        """
        if self._state is BreakerState.CLOSED:
            return False
        wait = self.retry_in()
        if self._state is BreakerState.OPEN:
            if wait > 0:
                raise VendorUnavailable(
                    f"vendor unavailable (circuit open after {self.threshold} consecutive failures; "
                    f"next probe in {wait:.1f}s)",
                    url=url,
                    retry_after=wait,
                )
            self._probe_failures = 0
            self._move(BreakerState.HALF_OPEN)
        if self._probe_out:
            raise VendorUnavailable(
                "vendor unavailable (circuit half-open; a probe request is in flight)", url=url
            )
        if wait > 0:
            raise VendorUnavailable(
                f"vendor unavailable (circuit half-open; probe {self._probe_failures + 1} of {self.probes} "
                f"in {wait:.1f}s)", url=url, retry_after=wait,
            )
        self._probe_out = True
        return True

    def record_success(self, probe: bool = False) -> None:
        """A call got an answer from a healthy vendor."""
        self._failures = 0
        if probe:
            self._probe_out = False
        if self._state is not BreakerState.CLOSED and (probe or self._state is BreakerState.HALF_OPEN):
            self.cooldown_s = self.base_cooldown_s
            self._probe_failures = 0
            self._move(BreakerState.CLOSED)

    def record_failure(self, probe: bool = False) -> None:
        """A call failed transiently (5xx, timeout, reset, bad body)."""
        self._failures += 1
        if probe:
            self._probe_out = False
            self._probe_failures += 1
            if self._probe_failures < self.probes:
                self._next_probe_at = self._clock.monotonic() + self.policy.probe_gap_s
                return
            self.cooldown_s = min(self.cooldown_cap_s, self.cooldown_s * 2)
            self._open()
        elif self._state is BreakerState.CLOSED and self._failures >= self.threshold:
            self._open()

    def record_neutral(self, probe: bool = False) -> None:
        """A call ended without telling us about vendor health (429, 4xx, cancellation).

        A probe that ends this way frees the slot so the next caller can probe.
        """
        if probe:
            self._probe_out = False

    def _open(self) -> None:
        self._opened_at = self._clock.monotonic()
        if self._state is not BreakerState.OPEN:
            self._move(BreakerState.OPEN)

    def _move(self, to: BreakerState) -> None:
        before, self._state = self._state, to
        at_ms = self._clock.now_ms()
        self.transitions.append((at_ms, before, to))
        self.transition_count += 1
        del self.transitions[: -self._history]
        if self._on_transition is not None:
            self._on_transition(BreakerTransitionEvent(at_ms, before, to, self.cooldown_s))
