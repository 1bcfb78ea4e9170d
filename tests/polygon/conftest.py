"""Fixtures for the vendor tests."""

from __future__ import annotations

import pytest
from vendor_helpers import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock."""
    return FakeClock()
