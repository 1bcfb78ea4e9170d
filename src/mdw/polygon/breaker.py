"""Circuit breaker: stop calling a vendor that is down, and find out cheaply when it is back.

After ``threshold`` consecutive transient failures the breaker opens and calls fail fast with
:class:`~mdw.errors.VendorUnavailable`. After the cool-down exactly one probe is let through
(half-open): success closes the breaker, failure re-opens it with the cool-down doubled up to a cap.
429s are not failures here: they mean "slower", which is the limiter's job.
"""

from __future__ import annotations

from collections.abc import Callable

from mdw.clock import SYSTEM_CLOCK, Clock
from mdw.errors import VendorUnavailable
from mdw.polygon.events import BreakerState, BreakerTransitionEvent

Transition = tuple[int, BreakerState, BreakerState]


class CircuitBreaker:
    """Consecutive-failure breaker with a single half-open probe and exponential cool-down.

    Args:
        threshold: consecutive transient failures that open the breaker.
        cooldown_s: first cool-down; doubled after each failed probe.
        cooldown_cap_s: the longest cool-down.
        clock: time source (tests pass a fake one).
        on_transition: called with a frozen event on every state change.
    """

    def __init__(
        self,
        threshold: int = 5,
        cooldown_s: float = 30.0,
        cooldown_cap_s: float = 600.0,
        *,
        clock: Clock = SYSTEM_CLOCK,
        on_transition: Callable[[BreakerTransitionEvent], None] | None = None,
        history: int = 100,
    ) -> None:
        self.threshold = max(1, threshold)
        self.base_cooldown_s = cooldown_s
        self.cooldown_cap_s = max(cooldown_s, cooldown_cap_s)
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_out = False
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
        """Seconds until an open breaker lets a probe through (0 if it would now)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown_s - self._clock.monotonic())

    def before_call(self, url: str | None = None) -> bool:
        """Admit a call or raise; returns True when this call is the half-open probe.

        The caller must then report exactly one of :meth:`record_success`,
        :meth:`record_failure` or :meth:`record_neutral` (``probe=`` the returned flag).

        Raises:
            VendorUnavailable: the breaker is open, or a probe is already in flight.
        """
        if self._state is BreakerState.CLOSED:
            return False
        if self._state is BreakerState.OPEN:
            wait = self.retry_in()
            if wait > 0:
                raise VendorUnavailable(
                    f"vendor unavailable (circuit open after {self.threshold} consecutive failures; "
                    f"next probe in {wait:.1f}s)",
                    url=url,
                    retry_after=wait,
                )
            self._move(BreakerState.HALF_OPEN)
        if self._probe_out:
            raise VendorUnavailable(
                "vendor unavailable (circuit half-open; a probe request is in flight)", url=url
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
            self._move(BreakerState.CLOSED)

    def record_failure(self, probe: bool = False) -> None:
        """A call failed transiently (5xx, timeout, reset, bad body)."""
        self._failures += 1
        if probe:
            self._probe_out = False
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
