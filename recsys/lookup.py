"""Id lookups over large columns, in bounded steps.

A server loads a new artifact in a worker thread while it keeps answering
requests. A single pandas call that turns a million Arrow strings into Python
objects, or looks them up in a hash table, holds the GIL for a few hundred
milliseconds, and every request waits that long. These helpers do the same
work in chunks of :data:`CHUNK` rows, so that the interpreter can switch
threads between chunks: the same result, with the longest pause bounded by one
chunk's work.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

#: Rows converted or looked up per step (a few ms of work each).
CHUNK = 1 << 15


def object_values(column: pd.Series) -> np.ndarray:
    """``column.to_numpy(dtype=object)``, in chunks; shape (n,)."""
    out = np.empty(len(column), dtype=object)
    for start in range(0, len(column), CHUNK):
        out[start : start + CHUNK] = column.iloc[start : start + CHUNK].to_numpy(dtype=object)
    return out


def index_rows(index: pd.Index, column: pd.Series) -> np.ndarray:
    """``index.get_indexer`` of a column's values as strings, in chunks; -1 where absent.

    Returns
    -------
    ndarray
        Shape (n,), intp.
    """
    out = np.empty(len(column), dtype=np.intp)
    for start in range(0, len(column), CHUNK):
        part = column.iloc[start : start + CHUNK].astype(str).to_numpy(dtype=object)
        out[start : start + CHUNK] = index.get_indexer(part)
    return out


def codes(column: pd.Series, mapping: Mapping[str, int]) -> np.ndarray:
    """Integer code of each value (as a string) by ``mapping``, in chunks; -1 if unmapped."""
    keys = pd.Index(list(mapping), dtype=object)
    values = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
    rows = index_rows(keys, column)
    return np.where(rows >= 0, values[rows], -1)
