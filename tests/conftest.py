"""Test-wide settings."""

import os

# implicit runs up to 10x slower with OpenBLAS threads inside its own workers.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import gc  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _unfrozen_heap():
    """A service started by a test freezes the heap (``RECSYS_GC_FREEZE``): undo it after.

    Otherwise objects alive during one test would stay out of every later
    test's collections, and a test that expects a cycle to be collected could
    fail because of an earlier one.
    """
    yield
    gc.unfreeze()
