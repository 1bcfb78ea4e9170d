"""The faults the wire produces in front of any route: latency, outages, 5xx pages, resets and hangs.

The REST routes and the S3 bucket sit behind the same proxy on the real vendor, so one function
draws and answers these for both; each caller passes the error page its service sends and handles
the faults that belong to its protocol (a JSON ``status: ERROR`` body, a truncated object body).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from mdw.simulator.responses import proxy_error, reset_connection
from mdw.simulator.state import SimState


async def wire_fault(
    request: web.Request, st: SimState, error_page: Callable[[], web.StreamResponse],
) -> tuple[web.StreamResponse | None, str | None]:
    """Hold the configured latency, then answer an outage or a drawn wire fault.

    Returns the response to send instead of the route's (None to go on) and the fault drawn
    (None, or one the caller handles itself: ``status_error``, ``truncate``).
    """
    delay = st.faults.latency_s(st.config.latency_ms, st.config.jitter_ms)
    if delay > 0:
        st.stats.delayed_s += delay
        await asyncio.sleep(delay)
    if st.faults.in_outage():
        st.stats.faults["outage"] += 1
        return proxy_error(st.faults.error_status()), None
    fault = st.faults.draw()
    if fault == "error":
        st.stats.faults["error"] += 1
        return error_page(), fault
    if fault == "reset":
        st.stats.faults["reset"] += 1
        reset_connection(request)
        return web.Response(status=500), fault
    if fault == "hang":
        st.stats.faults["hang"] += 1
        await asyncio.sleep(st.faults.config.hang_s)
        return proxy_error(504), fault
    return None, fault
