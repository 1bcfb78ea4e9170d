"""Simulator settings: keys and plans, rate-limit window, latency, faults and the data clock.

Everything that is unknown about the real API (see the reference's "not established" list) is a
switch here, so a client can be tested against either behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Literal, TypeVar

import msgspec

from mdw.config import RateLimit
from mdw.errors import ConfigError
from mdw.plans import PLAN_FORMS, Delay, History, Plan
from mdw.simulator.revisions import REVISED_BY_DEFAULT
from mdw.simulator.roster import MAX_STOCKS

# The simulator's own plan beside the vendor's: everything, in real time, without a rate limit.
UNLIMITED = Plan("unlimited", History(), Delay(), RateLimit.parse("unlimited"), True)


def key_plan(text: str) -> Plan:
    """A key's plan: ``unlimited``, a vendor plan name or an explicit spec (as ``MDW_PLAN``).

    Raises:
        ConfigError: the text is none of those.
    """
    if text.strip().lower() == "unlimited":
        return UNLIMITED
    return Plan.parse(text)


_Config = TypeVar("_Config", "FaultConfig", "StreamConfig")


def _from_dict(cls: type[_Config], data: Mapping[str, object], base: _Config, what: str) -> _Config:
    """``base`` with the fields of ``data`` changed, each checked against its declared type.

    Raises:
        ConfigError: a field is unknown, of the wrong type, or out of range.
    """
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise ConfigError(f"unknown {what} field(s): {', '.join(unknown)}")
    try:
        return msgspec.convert({**base.to_dict(), **data}, cls)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"bad {what} setting: {exc}") from None


# The malformed values a bar can be served with (FaultConfig.bad_value): each is one red-team case.
BAD_VALUES = (
    "null_price", "nan_price", "inf_price", "string_price", "null_volume", "float_t", "missing_t",
    "huge_n", "zero_price", "negative_price", "vw_outside", "missing_n", "duplicate_t", "outside_range",
)


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Seeded fault injection; every rate is a probability per request (per bar for invalid bars).

    The per-request faults (error, reset, hang, truncate, status_error) are mutually exclusive:
    one uniform draw per request picks at most one of them, so each appears at its own rate.
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0  # 500/502/503/504 with a non-JSON proxy body
    reset_rate: float = 0.0  # the connection is reset without a response
    hang_rate: float = 0.0  # the response is held for hang_s seconds (client timeouts)
    hang_s: float = 30.0
    truncate_rate: float = 0.0  # HTTP 200 whose JSON body is cut short
    status_error_rate: float = 0.0  # HTTP 200 with {"status": "ERROR", ...}
    invalid_bar_rate: float = 0.0  # per served bar: high and low swapped (h < l)
    bad_value: str = "null_price"  # which malformed value bad_value_rate puts in a bar (BAD_VALUES)
    bad_value_rate: float = 0.0  # per served aggregate bar: one malformed value (see bad_value)
    outage: bool = False  # on: every request fails with a 5xx
    outage_start_s: float | None = None  # outage window, seconds after the server started
    outage_duration_s: float = 0.0
    # The event loop is blocked for stall_ms right after a request is admitted (counted by the rate
    # limit), as a CPU-bound answer does: requests sent meanwhile wait unread and are counted when
    # the loop reads them, possibly after their client gave up. Drawn per request on its own seeded
    # stream (the other faults keep their sequence); at most stall_limit stalls per setting.
    stall_rate: float = 0.0
    stall_ms: float = 0.0
    stall_limit: int | None = None

    def __post_init__(self) -> None:
        rates = ("error_rate", "reset_rate", "hang_rate", "truncate_rate", "status_error_rate",
                 "invalid_bar_rate", "bad_value_rate", "stall_rate")
        for name in rates:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"fault {name} must be between 0 and 1, got {value}")
        if self.bad_value not in BAD_VALUES:
            known = ", ".join(BAD_VALUES)
            raise ConfigError(f"fault bad_value must be one of {known}, got {self.bad_value!r}")
        if self.request_fault_rate > 1.0 + 1e-12:
            raise ConfigError("fault rates (error, reset, hang, truncate, status_error) exceed 1 in total")
        for name in ("latency_ms", "jitter_ms", "hang_s", "outage_duration_s", "stall_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"fault {name} must not be negative")
        if self.stall_limit is not None and self.stall_limit < 0:
            raise ConfigError("fault stall_limit must not be negative")

    @property
    def request_fault_rate(self) -> float:
        return (self.error_rate + self.reset_rate + self.hang_rate + self.truncate_rate
                + self.status_error_rate)

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, object], base: FaultConfig | None = None) -> FaultConfig:
        """Build from JSON (as posted to ``/_sim/faults``); unknown fields and wrong types are errors."""
        return _from_dict(cls, data, base or cls(), "fault")


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """How the WebSocket stream behaves, and the faults it injects (seeded, per bar or per minute).

    ``late_rate``, ``resend_rate`` and ``wrong_rate`` are drawn once per bar and are mutually
    exclusive (one uniform draw picks at most one); ``drop_rate`` is drawn per connection at each
    minute's emission.
    """

    delay_ms: int = 15 * 60_000  # the delayed feed (/delayed/...) runs this far behind
    emit_lag_ms: int = 0  # a minute's events go out this long after the minute ends
    frame_events: int = 500  # events per frame at most (each frame is a JSON array)
    drop_rate: float = 0.0  # the connection is cut (no close frame) after a minute's events
    late_rate: float = 0.0  # a bar is held back and sent late_ms after its due time
    late_ms: int = 120_000
    resend_rate: float = 0.0  # a bar is sent with provisional values, then re-sent corrected
    resend_ms: int = 60_000
    wrong_rate: float = 0.0  # a bar is sent with values REST never serves, and never corrected
    auth_fail: bool = False  # every auth is answered auth_failed, valid key or not
    auth_timeout_s: float = 10.0  # wall seconds a connection may wait before authenticating
    max_queue_frames: int = 20_000  # a consumer this far behind is disconnected (1008)

    def __post_init__(self) -> None:
        for name in ("drop_rate", "late_rate", "resend_rate", "wrong_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"stream {name} must be between 0 and 1, got {value}")
        if self.late_rate + self.resend_rate + self.wrong_rate > 1.0 + 1e-12:
            raise ConfigError("stream late_rate + resend_rate + wrong_rate exceed 1 in total")
        for name in ("delay_ms", "emit_lag_ms", "late_ms", "resend_ms", "auth_timeout_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"stream {name} must not be negative")
        if self.frame_events < 1 or self.max_queue_frames < 1:
            raise ConfigError("stream frame_events and max_queue_frames must be at least 1")

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, object], base: StreamConfig | None = None) -> StreamConfig:
        """Build from JSON (as posted to ``/_sim/stream``); unknown fields and wrong types are errors."""
        return _from_dict(cls, data, base or cls(), "stream")


@dataclass(frozen=True, slots=True)
class SimConfig:
    """How one simulator instance behaves.

    Args:
        seed: the market and the fault sequence are reproducible from it.
        keys: API key -> plan: ``unlimited`` (the default key's), a vendor plan (``free``: 5
            requests/min, two years, end-of-day data; ``starter``, ``developer``, ``advanced``) or
            an explicit ``history=5y,delay=15m,rate=unlimited`` (see :mod:`mdw.plans`).
        straddle: a request that starts before the key's history and ends inside it is refused
            (``refuse``, 403 as one outside it) or answered with the allowed part (``clip``); the
            vendor's answer is not known.
        delay: withhold data newer than the key's plan delay (on, as the vendor does).
        not_entitled: route names (``grouped_stocks``, ``splits_v1`` ...) every key is refused
            with the vendor's "not entitled" 403, as for a plan without them.
        null_results: an empty aggregates answer carries ``"results": null`` (instead of no key).
        no_vw_n: tickers whose bars come without ``vw`` and ``n``.
        otc_flag: bars of tickers listed on the OTC market carry ``otc: true`` (the vendor's flag), in
            aggregates and in grouped daily asked with ``include_otc``.
        revised: tickers whose daily bars are revised once after the close, as the vendor does:
            until 09:00 ET the next day a session's bar is served preliminary (less volume and
            fewer trades), then final (see :mod:`mdw.simulator.revisions`); empty turns it off.
        window: the rate-limit window: ``sliding`` 60 s, or ``fixed`` calendar minute.
        rate_limit: overrides every plan's request rate (``"100/min"``, ``"unlimited"``).
        retry_after: send ``Retry-After`` on 429 (the real API is not known to).
        latency_ms, jitter_ms: added to every request (on top of ``faults.latency_ms``).
        now_ms: the data clock: bars exist only for minutes completed before it (None = wall clock).
        speed: simulated seconds per wall second from ``now_ms`` on (None: frozen at ``now_ms``,
            or the wall clock without it; 60 runs an hour of market in a minute).
        stream: the WebSocket feed's timing and faults.
        not_found_tickers: tickers answered with 404 "Ticker not found.".
        status: ``OK`` or ``DELAYED`` in successful aggregate envelopes.
        cursor_adjusted: also carry ``adjusted`` in the aggregates cursor (unknown in the real API).
        missing_key_status: 401 (spec) or 400 (one user report) for a request without a key.
        host_next_url: next_url uses the Host header called (True) or ``public_base`` (False).
        n_stocks, n_crypto, n_fx: universe size (stocks beyond the real-looking names are synthetic).
        flatfile_keys: flat-file (S3) access key id -> secret; separate from the API keys.
        flatfile_denied: markets (``us_stocks_sip``, ``global_crypto`` ...) whose files every key
            is refused (403), as for a plan without them; also switchable at run time.
        flatfile_dashed_pairs: files spell pairs ``X:BTC-USD`` (True) or ``X:BTCUSD``.
        flatfile_list_sizes: ``exact`` (a listing generates files to size them) or ``estimate``.
        flatfile_cache_mb: generated files kept in memory.
        page_cache_mb: encoded aggregates pages kept in memory (pages that can no longer change).
        flatfile_unpublished_status: 403 (the vendor's word for "not yet published") or 404.
        n_stocks, n_crypto, n_fx: universe size. The first 300 stocks are the legacy names
            (always listed); beyond them come the market's securities, with listings,
            delistings, renames and thin trading (see :mod:`mdw.simulator.roster`).
        ticker_event_key: the key naming an event's type in ticker events: ``type`` (as the
            official client's recorded response) or ``event_type`` (as the OpenAPI spec).
    """

    seed: int = 42
    keys: dict[str, str] = field(default_factory=lambda: {"test-key": "unlimited"})
    window: Literal["sliding", "fixed"] = "sliding"
    rate_limit: str | None = None
    retry_after: bool = False
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    faults: FaultConfig = field(default_factory=FaultConfig)
    now_ms: int | None = None
    speed: float | None = None
    stream: StreamConfig = field(default_factory=StreamConfig)
    not_found_tickers: frozenset[str] = frozenset()
    status: Literal["OK", "DELAYED"] = "OK"
    cursor_adjusted: bool = True
    missing_key_status: Literal[400, 401] = 401
    public_base: str | None = None
    n_stocks: int = 300
    n_crypto: int = 20
    n_fx: int = 10
    flatfile_keys: dict[str, str] = field(
        default_factory=lambda: {"sim-flatfiles-key": "sim-flatfiles-secret"})
    flatfile_denied: frozenset[str] = frozenset()
    flatfile_dashed_pairs: bool = True
    flatfile_list_sizes: Literal["exact", "estimate"] = "exact"
    flatfile_cache_mb: int = 512
    page_cache_mb: int = 256
    flatfile_unpublished_status: Literal[403, 404] = 403
    ticker_event_key: Literal["type", "event_type"] = "type"
    straddle: Literal["refuse", "clip"] = "refuse"
    delay: bool = True
    not_entitled: frozenset[str] = frozenset()
    null_results: bool = False
    no_vw_n: frozenset[str] = frozenset()
    otc_flag: bool = True
    revised: frozenset[str] = REVISED_BY_DEFAULT

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError("the simulator needs at least one API key")
        for key, plan in self.keys.items():
            try:
                key_plan(plan)
            except ConfigError:
                raise ConfigError(f"key plan {plan!r} for a key is unknown; expected unlimited or "
                                  f"{PLAN_FORMS}") from None
            if not key:
                raise ConfigError("an API key must not be empty")
        if self.window not in ("sliding", "fixed"):
            raise ConfigError(f"rate-limit window must be 'sliding' or 'fixed', got {self.window!r}")
        if self.rate_limit is not None:
            RateLimit.parse(self.rate_limit)
        if self.status not in ("OK", "DELAYED"):
            raise ConfigError(f"status must be OK or DELAYED, got {self.status!r}")
        if self.missing_key_status not in (400, 401):
            raise ConfigError("missing_key_status must be 400 or 401")
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ConfigError("latency must not be negative")
        if self.speed is not None and not 0.0 <= self.speed <= 100_000.0:
            raise ConfigError(f"clock speed must be between 0 and 100000, got {self.speed}")
        if self.n_stocks < 1 or self.n_crypto < 0 or self.n_fx < 0:
            raise ConfigError("universe sizes must be positive")
        if self.n_stocks > MAX_STOCKS:
            raise ConfigError(f"the simulator lists at most {MAX_STOCKS} stocks, got {self.n_stocks}")
        if self.ticker_event_key not in ("type", "event_type"):
            raise ConfigError("ticker_event_key must be 'type' or 'event_type'")
        object.__setattr__(self, "not_found_tickers", frozenset(self.not_found_tickers))
        object.__setattr__(self, "flatfile_denied", frozenset(self.flatfile_denied))
        object.__setattr__(self, "not_entitled", frozenset(self.not_entitled))
        object.__setattr__(self, "no_vw_n", frozenset(self.no_vw_n))
        object.__setattr__(self, "revised", frozenset(self.revised))
        if self.straddle not in ("refuse", "clip"):
            raise ConfigError("straddle must be 'refuse' or 'clip'")
        if not all(k and s for k, s in self.flatfile_keys.items()):
            raise ConfigError("a flat-file key id and its secret must not be empty")
        if self.flatfile_list_sizes not in ("exact", "estimate"):
            raise ConfigError("flatfile_list_sizes must be 'exact' or 'estimate'")
        if self.page_cache_mb < 0:
            raise ConfigError("page_cache_mb must be >= 0")
        if self.flatfile_cache_mb < 0 or self.flatfile_unpublished_status not in (403, 404):
            raise ConfigError("flatfile_cache_mb must be >= 0 and flatfile_unpublished_status 403 or 404")

    def plan_rate(self, plan: str) -> RateLimit:
        """The request rate a key of ``plan`` gets (the override wins)."""
        if self.rate_limit is not None:
            return RateLimit.parse(self.rate_limit)
        return key_plan(plan).rate
