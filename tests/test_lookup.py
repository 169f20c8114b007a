"""Chunked id lookups give what the one-call pandas versions give."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys import lookup


def test_chunked_lookups_match_pandas(monkeypatch) -> None:
    monkeypatch.setattr(lookup, "CHUNK", 7)  # many chunks, a ragged last one
    index = pd.Index([f"a{i}" for i in range(20)])
    column = pd.Series([f"a{i}" for i in (3, 19, 0, 25, 7)] * 5 + ["zz"])
    expected = index.get_indexer(column.astype(str).to_numpy())
    assert np.array_equal(lookup.index_rows(index, column), expected)
    assert (lookup.index_rows(index, column)[-1], lookup.index_rows(index, column)[3]) == (-1, -1)
    assert list(lookup.object_values(column)) == column.tolist()
    prov = pd.Series(["editorial", "learned", "learned, reviewed", "other"] * 3)
    mapping = {"editorial": 0, "learned, reviewed": 1, "learned": 2}
    assert lookup.codes(prov, mapping).tolist() == [0, 2, 1, -1] * 3
    assert lookup.object_values(pd.Series([], dtype=str)).shape == (0,)
