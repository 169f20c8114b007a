"""Stored answers: known answers on tiny arrays, and equality with the live search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys.errors import ArtifactError
from recsys.retrieval import StoredAnswers, build_index, compute_answers

IDS = np.array([[4, 2, 7, -1], [1, 0, 3, 5], [-1, -1, -1, -1]])


def test_first_gives_a_prefix_or_sends_the_query_live() -> None:
    s = StoredAnswers(IDS)
    assert s.depth == 4 and s.n_queries == 3 and s.n_stored == 3 and s.ids.dtype == np.int32
    assert s.first(0, 2).tolist() == [4, 2]
    assert s.first(0, 2).dtype == np.int64
    assert s.first(1, 4).tolist() == [1, 0, 3, 5]
    assert s.first(0, 4) is None  # only three ids stored: the live search fills it
    assert s.first(1, 5) is None  # deeper than stored
    assert s.first(2, 1) is None  # nothing stored for it
    blocked = np.zeros(8, dtype=bool)
    blocked[3] = True
    assert s.first(1, 2, blocked).tolist() == [1, 0]  # the blocked id lies beyond k
    assert s.first(1, 3, blocked) is None  # ... and within it: search live
    with pytest.raises(ValueError):
        s.ids[0, 0] = 9  # read-only


def test_some_queries_stored() -> None:
    s = StoredAnswers(IDS[:2], rows=np.array([1, 5]), n_queries=7)
    assert s.n_queries == 7 and s.n_stored == 2
    assert s.first(1, 2).tolist() == [4, 2]
    assert s.first(5, 4).tolist() == [1, 0, 3, 5]
    assert all(s.first(r, 1) is None for r in (0, 2, 3, 4, 6))


def test_bad_arrays_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        StoredAnswers(np.zeros(3, dtype=np.int32))
    with pytest.raises(ValueError):
        StoredAnswers(np.zeros((2, 2)))
    with pytest.raises(ValueError):
        StoredAnswers(np.array([[0, -2]]))
    with pytest.raises(ValueError, match="one per stored"):
        StoredAnswers(IDS, rows=np.array([0, 1]), n_queries=5)
    with pytest.raises(ValueError, match="increase"):
        StoredAnswers(IDS, rows=np.array([0, 2, 1]), n_queries=5)
    with pytest.raises(ValueError, match="increase"):
        StoredAnswers(IDS, rows=np.array([0, 1, 5]), n_queries=5)
    stored = StoredAnswers(IDS, rows=np.array([0, 2, 4]), n_queries=6)
    path = stored.save(tmp_path / "a.npz")
    back = StoredAnswers.load(path, n_queries=6, n_ids=8)
    assert back.ids.tolist() == IDS.tolist() and back.rows.tolist() == [0, 2, 4]
    assert back.first(2, 2).tolist() == [1, 0] and back.first(1, 1) is None
    with pytest.raises(ArtifactError, match="queries"):
        StoredAnswers.load(path, n_queries=7, n_ids=8)
    with pytest.raises(ArtifactError, match="beyond"):
        StoredAnswers.load(path, n_queries=6, n_ids=7)
    (tmp_path / "b.npz").write_bytes(b"not numpy")
    with pytest.raises(ArtifactError, match="unreadable"):
        StoredAnswers.load(tmp_path / "b.npz", n_queries=3, n_ids=8)


@pytest.mark.parametrize("kind_threshold", [10**9, 0], ids=["exact", "hnsw"])
@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_stored_prefixes_are_the_live_answers(kind_threshold: int, metric: str) -> None:
    """For every k up to the depth, the stored prefix re-ranked is what a live search returns."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 16)).astype(np.float32) * rng.lognormal(0, 0.5, (3000, 1))
    x = x.astype(np.float32)
    idx = build_index(x, metric=metric, exact_threshold=kind_threshold, ef_search=64)
    queries = rng.normal(size=(60, 16)).astype(np.float32)
    exclude = [rng.choice(3000, size=int(rng.integers(0, 40)), replace=False) for _ in range(60)]
    rows = np.delete(np.arange(60), 7)
    stored = compute_answers(idx, queries, 48, exclude=exclude, rows=rows)
    assert stored.ids.shape == (59, 48) and stored.n_queries == 60
    assert stored.first(7, 1) is None  # not asked: searched live
    for r in rows.tolist():
        for k in (1, 10, 48):
            got = stored.first(r, k)
            assert got is not None
            scores, ids = idx.rank(queries[r], got)
            live_scores, live_ids = idx.search(queries[r], k, exclude=[exclude[r]])
            assert ids.tolist() == live_ids[0].tolist(), (r, k)
            np.testing.assert_allclose(scores, live_scores[0], rtol=1e-5, atol=1e-5)
            assert not np.isin(ids, exclude[r]).any()


def test_rank_orders_by_exact_score_and_refuses_unknown_ids() -> None:
    x = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]], dtype=np.float32)
    idx = build_index(x, metric="ip", exact_threshold=10**9)
    scores, ids = idx.rank(np.array([1.0, 1.0], dtype=np.float32), np.array([3, 0, 2]))
    assert ids.tolist() == [2, 0, 3]
    np.testing.assert_allclose(scores, [1.4, 1.0, -1.0], rtol=1e-6)
    with pytest.raises(ValueError, match="not in the index"):
        idx.rank(np.array([1.0, 1.0], dtype=np.float32), np.array([9]))
    with pytest.raises(ValueError, match="one query"):
        idx.rank(np.ones((2, 2), dtype=np.float32), np.array([0]))


def test_threads_are_asked_before_every_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """``n_threads`` is consulted before each batch and is in force while faiss searches it."""
    import faiss

    import recsys.retrieval.answers as answers

    monkeypatch.setattr(answers, "_BATCH", 8)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 8)).astype(np.float32)
    idx = build_index(x, metric="ip", exact_threshold=0, ef_search=32)
    queries = rng.normal(size=(30, 8)).astype(np.float32)
    plain = compute_answers(idx, queries, 10)

    asked: list[int] = []
    during: list[int] = []
    search = idx.search

    def spying_search(*args, **kwargs):
        during.append(faiss.omp_get_max_threads())
        return search(*args, **kwargs)

    monkeypatch.setattr(idx, "search", spying_search)
    before = faiss.omp_get_max_threads()
    widened = compute_answers(
        idx, queries, 10, n_threads=lambda: asked.append(1) or (1 if len(asked) <= 2 else 2)
    )
    assert len(asked) == 4  # 30 queries in batches of 8
    assert during == [1, 1, 2, 2]
    assert faiss.omp_get_max_threads() == before  # restored
    assert widened.ids.tolist() == plain.ids.tolist()
