"""Bars as Arrow: the columns t, o, h, l, c, v, vw, n, otc, with nulls where the vendor omitted a value."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from mdw.domain import BAR_COLUMNS, BarBatch

if TYPE_CHECKING:
    import pyarrow as pa


def to_arrow(batch: BarBatch) -> pa.Table:
    """A ``pyarrow.Table`` with columns t, o, h, l, c, v, vw, n, otc; NaN v/vw, a missing n and a
    missing otc flag become nulls (``otc`` is boolean)."""
    import pyarrow as pa

    return pa.Table.from_arrays(arrow_arrays(batch), names=list(BAR_COLUMNS))


def arrow_arrays(batch: BarBatch) -> list[pa.Array]:
    """The batch's columns as pyarrow arrays, in :data:`~mdw.domain.BAR_COLUMNS` order (NaN v/vw, a
    missing n and a missing otc as nulls)."""
    import pyarrow as pa

    arrays = []
    for name in BAR_COLUMNS:
        col = getattr(batch, name)
        if name == "otc":
            arrays.append(otc_array(col))
        elif name in ("v", "vw", "n"):
            mask = np.isnan(col) if name != "n" else col < 0  # n < 0 is MISSING_N
            arrays.append(pa.array(col, mask=mask) if mask.any() else pa.array(col))
        else:
            arrays.append(pa.array(col))
    return arrays


def otc_array(otc: npt.NDArray[np.int8]) -> pa.Array:
    """The per-bar OTC flags as an Arrow boolean array, null where a bar has none."""
    import pyarrow as pa

    missing = otc < 0  # MISSING_OTC
    if missing.all():
        return pa.nulls(len(otc), pa.bool_())
    return pa.array(otc > 0, pa.bool_(), mask=missing if missing.any() else None)
