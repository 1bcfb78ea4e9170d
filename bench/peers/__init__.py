"""What users would pick instead of mdw, re-implemented to run against the simulator side by side.

- :mod:`peers.original`: the original system's backfill algorithm, its choices kept.
- :mod:`peers.official`: a script around the official ``massive`` client, as its docs show it.
- :mod:`peers.raw`: the floor: a raw concurrent fetch of the same pages, decoded, nothing stored.
"""

from __future__ import annotations
