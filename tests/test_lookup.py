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
    prov = pd.Series(["editorial", "learned", "learned, reviewed", "other"] * 3)
    mapping = {"editorial": 0, "learned, reviewed": 1, "learned": 2}
    assert lookup.codes(prov, mapping).tolist() == [0, 2, 1, -1] * 3


def _arrow_column(values: list) -> pd.Series:
    return pd.Series(values, dtype=pd.StringDtype("pyarrow"))


def test_string_lookup_finds_rows_like_a_pandas_index(monkeypatch) -> None:
    monkeypatch.setattr(lookup, "CHUNK", 3)  # hashed in several chunks
    ids = [f"t{i:04d}" for i in range(10)] + ["é-ünïcode", "x"]
    for column in (_arrow_column(ids), pd.Series(ids, dtype=object), ids):
        found = lookup.StringLookup(column)
        keys = ["t0003", "nope", "x", "é-ünïcode", "t0000", "", "T0003"]
        assert found.get_indexer(keys).tolist() == pd.Index(ids).get_indexer(keys).tolist()
        assert found.get_loc("t0009") == 9 and found.get_loc("missing") == -1
        assert found.get_loc(3) == -1  # not a string: absent, not an error
        assert found.values([11, 0, 10]) == ["x", "t0000", "é-ünïcode"]
        assert len(found) == 12
        # Held: the strings (Arrow) and 12 bytes of hash and row per id, no Python objects.
        assert found.nbytes == found._strings.nbytes + 12 * 12
        assert found.get_indexer([]).tolist() == []


def test_string_lookup_survives_hash_collisions(monkeypatch) -> None:
    """With every id hashed alike, each lookup walks the run and still finds its row."""
    monkeypatch.setattr(lookup, "_hash", lambda v: np.zeros(len(v), dtype=np.uint64))
    ids = ["a", "b", "c", "d"]
    found = lookup.StringLookup(_arrow_column(ids))
    assert found.get_indexer(["d", "a", "zz", "c"]).tolist() == [3, 0, -1, 2]


def test_string_lookup_nulls_duplicates_and_empty() -> None:
    found = lookup.StringLookup(_arrow_column(["a", None, "b", "a"]))
    assert found.get_indexer(["a", "b"]).tolist() == [0, 2]  # duplicates: the first row
    assert found.values([1, 3]) == [None, "a"]
    empty = lookup.StringLookup(_arrow_column([]))
    assert empty.get_indexer(["a"]).tolist() == [-1] and len(empty) == 0


def test_arrow_strings_is_one_chunk_without_python_strings() -> None:
    import pyarrow as pa

    chunked = pd.Series(
        pd.arrays.ArrowStringArray(pa.chunked_array([["a", "b"], ["c"]])),
    )
    arr = lookup.arrow_strings(chunked)
    assert isinstance(arr, pa.Array) and arr.to_pylist() == ["a", "b", "c"]
    assert lookup.arrow_strings(pd.Series(["x", None], dtype=object)).to_pylist() == ["x", None]


def test_string_lookup_pickles_with_hashes_rebuilt() -> None:
    """Python's string hashes are salted per process: an unpickled lookup recomputes them."""
    import pickle

    found = lookup.StringLookup(_arrow_column(["a", "b", "c"]))
    again = pickle.loads(pickle.dumps(found))
    assert again.get_indexer(["c", "a", "q"]).tolist() == [2, 0, -1]
    assert again.get_loc("b") == 1


def test_get_loc_agrees_with_get_indexer_under_collisions(monkeypatch) -> None:
    monkeypatch.setattr(lookup, "_hash", lambda v: np.zeros(len(v), dtype=np.uint64))
    ids = ["a", "b", None, "c", "b"]
    found = lookup.StringLookup(_arrow_column(ids))
    for key in ("a", "b", "c", "zz", None, 3):
        assert found.get_loc(key) == int(found.get_indexer([key])[0])
    assert [found.get_loc(k) for k in ("c", "b", "zz")] == [3, 1, -1]


def test_isin_matches_numpy_on_both_paths(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    for n, m in [(0, 5), (5, 0), (20, 30), (200, 150), (1000, 3)]:
        values = rng.integers(0, 60, n)
        test = rng.integers(0, 60, m)
        expected = np.isin(values, test)
        assert np.array_equal(lookup.isin(values, test), expected)
        monkeypatch.setattr(lookup, "PAIRWISE_MAX", 0)  # the np.isin path
        assert np.array_equal(lookup.isin(values, test), expected)
        monkeypatch.undo()
