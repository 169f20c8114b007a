"""Tests of recsys.retrieval: exact and HNSW search, exclusions, persistence."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.errors import ArtifactError
from recsys.retrieval import VectorIndex, build_index
from recsys.retrieval import index as index_mod

K = 10


# ------------------------------------------------------------------ helpers
def brute_force(
    vectors: np.ndarray,
    ids: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    metric: str = "ip",
    exclude: list[np.ndarray] | None = None,
    blocked: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reference top-k in float64 with numpy; padding as the API promises."""
    v = vectors.astype(np.float64)
    q = np.atleast_2d(queries).astype(np.float64)
    if metric == "cosine":
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-300)
    all_scores = q @ v.T
    out_s = np.full((len(q), k), -np.inf)
    out_i = np.full((len(q), k), -1, dtype=np.int64)
    for r in range(len(q)):
        banned = set() if blocked is None else set(np.asarray(blocked).tolist())
        if exclude is not None:
            banned |= set(np.asarray(exclude[r]).tolist())
        keep = np.array([i not in banned for i in ids.tolist()], dtype=bool)
        cand = np.flatnonzero(keep)
        order = cand[np.argsort(-all_scores[r, cand], kind="stable")][:k]
        out_s[r, : order.size] = all_scores[r, order]
        out_i[r, : order.size] = ids[order]
    return out_s, out_i


def clustered(
    n: int,
    d: int,
    *,
    n_clusters: int = 40,
    spread: float = 0.5,
    norm_sigma: float = 0.1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-mixture items with lognormal norm jitter, and queries near centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, d))
    x = centres[rng.integers(0, n_clusters, n)] + spread * rng.standard_normal((n, d))
    x *= rng.lognormal(0.0, norm_sigma, (n, 1))
    q = centres[rng.integers(0, n_clusters, 200)] + spread * rng.standard_normal((200, d))
    return x.astype(np.float32), q.astype(np.float32)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [
        len(set(a[a >= 0].tolist()) & set(b[b >= 0].tolist()))
        for a, b in zip(found, truth, strict=True)
    ]
    return float(np.sum(hits) / np.sum(truth >= 0))


def assert_well_formed(
    scores: np.ndarray,
    ids: np.ndarray,
    k: int,
    n_eligible: np.ndarray | int,
    banned: list[set[int]] | None = None,
) -> None:
    """Shape, dtype, padding, order, uniqueness and exclusion invariants."""
    m = ids.shape[0]
    assert scores.shape == ids.shape == (m, k)
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    want = np.minimum(k, np.broadcast_to(n_eligible, (m,)))
    for r in range(m):
        real = ids[r] >= 0
        assert real.sum() == want[r], (r, real.sum(), want[r])
        assert real[: want[r]].all(), "padding must come last"
        assert np.all(np.isneginf(scores[r, ~real]))
        assert np.all(np.isfinite(scores[r, real]))
        assert np.all(np.diff(scores[r, real]) <= 1e-6), "scores must be descending"
        assert len(set(ids[r, real].tolist())) == real.sum(), "duplicate ids"
        if banned is not None:
            assert not set(ids[r, real].tolist()) & banned[r]


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def clustered_data() -> tuple[np.ndarray, np.ndarray]:
    return clustered(20_000, 32)


@pytest.fixture(scope="module", params=["ip", "cosine"])
def hnsw_case(request, clustered_data):
    x, q = clustered_data
    metric = request.param
    idx = build_index(x, metric=metric, exact_threshold=0)
    exact = build_index(x, metric=metric)
    return metric, x, q, idx, exact


# -------------------------------------------------------------- exact answers
FIVE = np.array([[1, 0], [0, 1], [1, 1], [-1, 0], [2, -1]], dtype=np.float32)


def test_exact_known_answer_inner_product():
    idx = build_index(FIVE)
    assert idx.kind == "exact" and idx.metric == "ip" and idx.ntotal == 5 and idx.dim == 2
    scores, ids = idx.search(np.array([3, 1], dtype=np.float32), 5)
    # q.v = 3, 1, 4, -3, 5 by hand.
    np.testing.assert_array_equal(ids, [[4, 2, 0, 1, 3]])
    np.testing.assert_allclose(scores, [[5, 4, 3, 1, -3]])


def test_exact_known_answer_cosine():
    idx = build_index(FIVE, metric="cosine")
    scores, ids = idx.search(np.array([[3, 1]], dtype=np.float32), 3)
    # cos = 3/sqrt10, 1/sqrt10, 4/sqrt20, -3/sqrt10, 5/sqrt50: the order differs from ip.
    np.testing.assert_array_equal(ids, [[0, 2, 4]])
    np.testing.assert_allclose(scores, [[3 / 10**0.5, 4 / 20**0.5, 5 / 50**0.5]], rtol=1e-6)


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_exact_equals_numpy_brute_force(metric):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 12)).astype(np.float32)
    q = rng.standard_normal((30, 12)).astype(np.float32)
    scores, ids = build_index(x, metric=metric).search(q, K)
    ref_s, ref_i = brute_force(x, np.arange(500), q, K, metric=metric)
    np.testing.assert_array_equal(ids, ref_i)
    np.testing.assert_allclose(scores, ref_s, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------- HNSW
def test_hnsw_recall_against_exact(hnsw_case):
    metric, x, q, idx, exact = hnsw_case
    assert idx.kind == "hnsw" and exact.kind == "exact"
    _, truth = exact.search(q, K)
    scores, found = idx.search(q, K)
    assert recall(found, truth) >= 0.95
    assert_well_formed(scores, found, K, len(x))
    # Scores are the true inner products / cosines of the returned items.
    v = x if metric == "ip" else x / np.linalg.norm(x, axis=1, keepdims=True)
    qq = q if metric == "ip" else q / np.linalg.norm(q, axis=1, keepdims=True)
    true_scores = np.einsum("rkd,rd->rk", v[found], qq)
    np.testing.assert_allclose(scores, true_scores, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_float16_storage_recall_scores_and_memory(clustered_data, metric):
    x, q = clustered_data
    exact = build_index(x, metric=metric)
    full = build_index(x, metric=metric, exact_threshold=0)
    half = build_index(x, metric=metric, exact_threshold=0, storage="float16")
    assert (half.kind, half.storage, full.storage) == ("hnsw", "float16", "float32")
    assert half.vectors.dtype == np.float16 and full.vectors.dtype == np.float32
    v = x if metric == "ip" else x / np.linalg.norm(x, axis=1, keepdims=True)
    # The stored vectors are the inputs in float16 (faiss rounds a few of them the other
    # way than numpy: within one unit in the last place), zero-copy and read-only.
    np.testing.assert_array_max_ulp(half.vectors, v.astype(np.float16), maxulp=1)
    assert not half.vectors.flags.writeable
    assert half.memory_bytes < full.memory_bytes - x.size  # 2 bytes less per component
    _, truth = exact.search(q, K)
    scores, found = half.search(q, K)
    assert recall(found, truth) >= 0.95
    assert_well_formed(scores, found, K, len(x))
    # Scores: exact inner products of the query with the stored (rounded) vectors.
    qq = q if metric == "ip" else q / np.linalg.norm(q, axis=1, keepdims=True)
    stored = half.vectors.astype(np.float32)
    np.testing.assert_allclose(
        scores, np.einsum("rkd,rd->rk", stored[found], qq), rtol=1e-5, atol=1e-5
    )
    # Exclusions and blocked ids work as with float32 storage.
    banned = [set(found[r, :5].tolist()) for r in range(len(q))]
    s2, f2 = half.search(q, K, exclude=[found[r, :5] for r in range(len(q))], blocked=[0, 1])
    assert_well_formed(s2, f2, K, len(x), [b | {0, 1} for b in banned])


def test_float16_storage_rules():
    x = np.random.default_rng(0).standard_normal((300, 4)).astype(np.float32)
    # Exact indexes keep float32 whatever is asked (the same settings serve small pools).
    assert build_index(x, storage="float16").storage == "float32"
    with pytest.raises(ValueError, match="'ip' space only"):
        build_index(x, exact_threshold=0, hnsw_space="l2-augmented", storage="float16")
    with pytest.raises(ValueError, match="float16 range"):
        build_index(x * 1e5, exact_threshold=0, storage="float16")
    with pytest.raises(ValueError, match="storage must be"):
        build_index(x, storage="int8")


def test_hnsw_ip_space_keeps_recall_with_skewed_norms():
    # ALS-like norm spread: the L2-augmented reduction degrades here, the IP graph
    # (the default, because the engine indexes ALS factors) does not.
    x, q = clustered(8_000, 16, norm_sigma=1.0, seed=3)
    truth = brute_force(x, np.arange(len(x)), q[:100], K)[1]
    idx = build_index(x, exact_threshold=0)
    assert idx.hnsw_space == "ip" and idx.faiss_index.d == 16
    scores, found = idx.search(q[:100], K)
    assert recall(found, truth) >= 0.95
    np.testing.assert_allclose(
        scores, np.einsum("rkd,rd->rk", x[found], q[:100]), rtol=1e-4, atol=1e-4
    )


def test_hnsw_same_seed_single_thread_is_reproducible():
    x, q = clustered(1_500, 8, seed=5)
    a = build_index(x, exact_threshold=0, random_state=7, n_threads=1, ef_search=16)
    b = build_index(x, exact_threshold=0, random_state=7, n_threads=1, ef_search=16)
    for got, ref in zip(a.search(q, K), b.search(q, K), strict=True):
        np.testing.assert_array_equal(got, ref)


# ------------------------------------------------------------- exclusions
@pytest.mark.parametrize("kind_threshold", [10**9, 0], ids=["exact", "hnsw"])
@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_exclusion_of_top_2k_still_returns_k(kind_threshold, metric):
    x, q = clustered(3_000, 16, seed=2)
    q = q[:40]
    idx = build_index(x, metric=metric, exact_threshold=kind_threshold)
    _, top = brute_force(x, np.arange(len(x)), q, 2 * K, metric=metric)
    exclude = [row for row in top]
    scores, ids = idx.search(q, K, exclude=exclude)
    assert_well_formed(scores, ids, K, len(x) - 2 * K, [set(r.tolist()) for r in top])
    ref_s, ref_i = brute_force(x, np.arange(len(x)), q, K, metric=metric, exclude=exclude)
    if idx.kind == "exact":
        np.testing.assert_array_equal(ids, ref_i)
        np.testing.assert_allclose(scores, ref_s, rtol=1e-5, atol=1e-5)
    else:
        assert recall(ids, ref_i) >= 0.95


@pytest.mark.parametrize("kind_threshold", [10**9, 0], ids=["exact", "hnsw"])
def test_blocked_and_exclude_together(kind_threshold):
    x, q = clustered(2_000, 8, seed=4)
    q = q[:25]
    idx = build_index(x, exact_threshold=kind_threshold)
    _, top = brute_force(x, np.arange(len(x)), q, 3 * K)
    blocked = top[0, :K]  # the first query's top-K blocked for everyone
    exclude = [row[K : 2 * K] for row in top]
    scores, ids = idx.search(q, K, exclude=exclude, blocked=blocked)
    banned = [set(blocked.tolist()) | set(e.tolist()) for e in exclude]
    n_eligible = np.array([len(x) - len(b) for b in banned])
    assert_well_formed(scores, ids, K, n_eligible, banned)
    ref_s, ref_i = brute_force(x, np.arange(len(x)), q, K, exclude=exclude, blocked=blocked)
    if idx.kind == "exact":
        np.testing.assert_array_equal(ids, ref_i)
    else:
        assert recall(ids, ref_i) >= 0.95


@pytest.mark.parametrize("kind_threshold", [10**9, 0], ids=["exact", "hnsw"])
def test_large_blocked_set_uses_selector_and_stays_exact(kind_threshold):
    x, q = clustered(2_000, 8, seed=6)
    q = q[:20]
    idx = build_index(x, exact_threshold=kind_threshold)
    blocked = np.random.default_rng(0).choice(
        len(x), index_mod.MAX_OVERFETCH_EXTRA + 300, replace=False
    )
    scores, ids = idx.search(q, K, blocked=blocked)
    assert_well_formed(scores, ids, K, len(x) - blocked.size, [set(blocked.tolist())] * len(q))
    ref_i = brute_force(x, np.arange(len(x)), q, K, blocked=blocked)[1]
    if idx.kind == "exact":
        np.testing.assert_array_equal(ids, ref_i)
    else:
        assert recall(ids, ref_i) >= 0.95


def _spy_fallback(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = VectorIndex._fallback

    def spy(self, q, row, *args, **kwargs):
        calls.append(row)
        return original(self, q, row, *args, **kwargs)

    monkeypatch.setattr(VectorIndex, "_fallback", spy)
    return calls


@pytest.mark.parametrize("kind_threshold", [10**9, 0], ids=["exact", "hnsw"])
def test_exclusions_beyond_overfetch_cap_go_through_selector(monkeypatch, kind_threshold):
    x, q = clustered(1_500, 8, seed=7)
    q = q[:6]
    # ef_search 16 < k + 50: HNSW's free first pass (efSearch results) is short too.
    idx = build_index(x, exact_threshold=kind_threshold, ef_search=16)
    monkeypatch.setattr(index_mod, "MAX_OVERFETCH_EXTRA", 4)
    calls = _spy_fallback(monkeypatch)
    _, top = brute_force(x, np.arange(len(x)), q, 50)
    exclude = list(top)  # 50 excluded per query, over-fetch only k + 4
    scores, ids = idx.search(q, K, exclude=exclude)
    assert sorted(calls) == list(range(len(q)))
    assert_well_formed(scores, ids, K, len(x) - 50, [set(t.tolist()) for t in top])
    ref_i = brute_force(x, np.arange(len(x)), q, K, exclude=exclude)[1]
    if idx.kind == "exact":
        np.testing.assert_array_equal(ids, ref_i)
    else:
        assert recall(ids, ref_i) >= 0.9


def test_hnsw_exact_last_resort_when_selector_search_comes_up_short(monkeypatch):
    x, q = clustered(1_500, 8, seed=8)
    q = q[:5]
    idx = build_index(x, exact_threshold=0)
    monkeypatch.setattr(index_mod, "MAX_OVERFETCH_EXTRA", 0)

    def nothing(self, qi, kk, *args):  # a selector search that finds nothing
        return np.full((1, kk), np.inf, dtype=np.float32), np.full((1, kk), -1, dtype=np.int64)

    monkeypatch.setattr(VectorIndex, "_selector_search", nothing)
    _, top = brute_force(x, np.arange(len(x)), q, 30)
    scores, ids = idx.search(q, K, exclude=list(top), blocked=top[0, -1:])
    ref_s, ref_i = brute_force(x, np.arange(len(x)), q, K, exclude=list(top), blocked=top[0, -1:])
    # The last resort is an exhaustive search: exact answers.
    np.testing.assert_array_equal(ids, ref_i)
    np.testing.assert_allclose(scores, ref_s, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("eligible_cap", [0, 20_000])
def test_hnsw_few_eligible_items_are_all_found(monkeypatch, eligible_cap):
    # Nearly everything blocked: a filtered graph search with a narrow breadth
    # cannot reach the few eligible items. Either the fallback scans the eligible
    # items directly (few of them), or the graph search comes up short and the
    # exhaustive storage search supplies them: both must be exact.
    monkeypatch.setattr(index_mod, "_FALLBACK_MAX_EF", 10)
    monkeypatch.setattr(index_mod, "_EXACT_WHEN_ELIGIBLE_AT_MOST", eligible_cap)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3_000, 8)).astype(np.float32)
    q = rng.standard_normal((20, 8)).astype(np.float32)
    idx = build_index(x, exact_threshold=0, ef_search=10, hnsw_m=4)
    calls: list[int] = []
    original = VectorIndex._exact_storage_search

    def spy(self, *args):
        calls.append(1)
        return original(self, *args)

    monkeypatch.setattr(VectorIndex, "_exact_storage_search", spy)
    blocked = np.setdiff1d(np.arange(len(x)), rng.choice(len(x), 15, replace=False))
    scores, ids = idx.search(q, K, blocked=blocked)
    assert calls
    ref_s, ref_i = brute_force(x, np.arange(len(x)), q, K, blocked=blocked)
    np.testing.assert_array_equal(ids, ref_i)
    np.testing.assert_allclose(scores, ref_s, rtol=1e-5, atol=1e-5)


def test_batch_path_needs_no_per_query_fallback(monkeypatch):
    x, q = clustered(3_000, 8, seed=9)
    q = np.repeat(q, 3, axis=0)  # 600 queries
    idx = build_index(x)
    calls = _spy_fallback(monkeypatch)
    _, top = brute_force(x, np.arange(len(x)), q, 7)
    exclude = [t[::-1] for t in top]  # varied sizes below: 0..6 ids per query
    exclude = [e[: r % 7] for r, e in enumerate(exclude)]
    scores, ids = idx.search(q, K, exclude=exclude, blocked=np.array([1, 2, 3]))
    assert calls == []
    ref_i = brute_force(x, np.arange(len(x)), q, K, exclude=exclude, blocked=np.array([1, 2, 3]))[1]
    np.testing.assert_array_equal(ids, ref_i)


def test_exclude_ids_not_in_index_are_ignored():
    idx = build_index(FIVE, ids=np.array([10, 20, 30, 40, 50]))
    _, ids = idx.search(np.array([3, 1], np.float32), 5, exclude=[np.array([999, -5, 50])])
    np.testing.assert_array_equal(ids, [[30, 10, 20, 40, -1]])


# ---------------------------------------------------------------- padding
@pytest.mark.parametrize("kind_threshold", [10**9, 0], ids=["exact", "hnsw"])
def test_padding_when_pool_smaller_than_k(kind_threshold):
    idx = build_index(FIVE, exact_threshold=kind_threshold)
    q = np.array([[3, 1], [0, 1]], dtype=np.float32)
    scores, ids = idx.search(q, 8, exclude=[np.array([2]), None], blocked=np.array([3]))
    np.testing.assert_array_equal(ids[0], [4, 0, 1, -1, -1, -1, -1, -1])
    np.testing.assert_allclose(scores[0, :3], [5, 3, 1])
    assert np.all(np.isneginf(scores[0, 3:]))
    assert_well_formed(scores, ids, 8, np.array([3, 4]), [{2, 3}, {3}])


def test_everything_excluded_gives_full_padding():
    idx = build_index(FIVE)
    scores, ids = idx.search(FIVE[:1], 3, blocked=np.arange(5))
    np.testing.assert_array_equal(ids, [[-1, -1, -1]])
    assert np.all(np.isneginf(scores))


@pytest.mark.parametrize("kind_threshold", [10**9, 0], ids=["exact", "hnsw"])
def test_empty_index(kind_threshold, tmp_path):
    idx = build_index(np.empty((0, 4), np.float32), exact_threshold=kind_threshold)
    assert idx.ntotal == 0 and idx.dim == 4
    scores, ids = idx.search(np.ones((2, 4), np.float32), 3, exclude=[[1], []], blocked=[2])
    assert ids.shape == (2, 3) and np.all(ids == -1) and np.all(np.isneginf(scores))
    idx.save(tmp_path, "empty")
    assert VectorIndex.load(tmp_path, "empty").ntotal == 0


# ----------------------------------------------------------------- ids
@pytest.mark.parametrize("kind_threshold", [10**9, 0], ids=["exact", "hnsw"])
def test_non_contiguous_external_ids_are_preserved(kind_threshold):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((300, 6)).astype(np.float32)
    ext = rng.permutation(np.arange(300, dtype=np.int64) * 7 + 1_000_003)
    q = rng.standard_normal((15, 6)).astype(np.float32)
    idx = build_index(x, ext, exact_threshold=kind_threshold)
    _, top = brute_force(x, ext, q, 4)
    exclude = [t[:2] for t in top]
    blocked = top[:, 2]
    scores, ids = idx.search(q, K, exclude=exclude, blocked=blocked)
    ref_s, ref_i = brute_force(x, ext, q, K, exclude=exclude, blocked=blocked)
    if idx.kind == "exact":
        np.testing.assert_array_equal(ids, ref_i)
    else:
        assert recall(ids, ref_i) >= 0.95
    assert set(ids.ravel().tolist()) <= set(ext.tolist())
    np.testing.assert_array_equal(idx.ids, ext)


# ----------------------------------------------------------- persistence
@pytest.mark.parametrize(
    ("kind_threshold", "metric", "space", "storage"),
    [
        (10**9, "ip", "l2-augmented", "float32"),
        (0, "ip", "l2-augmented", "float32"),
        (0, "cosine", "l2-augmented", "float32"),
        (0, "ip", "ip", "float32"),
        (0, "ip", "ip", "float16"),
        (0, "cosine", "ip", "float16"),
    ],
)
def test_save_load_round_trip(tmp_path, kind_threshold, metric, space, storage):
    x, q = clustered(2_000, 8, seed=12)
    ext = np.arange(len(x), dtype=np.int64)[::-1] * 3
    idx = build_index(
        x,
        ext,
        metric=metric,
        exact_threshold=kind_threshold,
        hnsw_space=space,
        ef_search=40,
        storage=storage,
    )
    files = idx.save(tmp_path / "sub", "pool")
    assert all(p.is_file() for p in files) and len(files) == 3
    loaded = VectorIndex.load(tmp_path / "sub", "pool")
    assert (
        loaded.kind,
        loaded.metric,
        loaded.ntotal,
        loaded.dim,
        loaded.ef_search,
        loaded.hnsw_space,
        loaded.storage,
    ) == (
        idx.kind,
        idx.metric,
        idx.ntotal,
        idx.dim,
        idx.ef_search,
        idx.hnsw_space,
        storage,
    )
    exclude = [ext[:5]] * len(q)
    for got, ref in zip(
        loaded.search(q, K, exclude=exclude, blocked=ext[5:8]),
        idx.search(q, K, exclude=exclude, blocked=ext[5:8]),
        strict=True,
    ):
        np.testing.assert_array_equal(got, ref)

    # Mapped from the file: the same answers, before and after its pages are let go.
    mapped = VectorIndex.load(tmp_path / "sub", "pool", mmap=True)
    assert mapped.mapped and not loaded.mapped and not idx.mapped
    assert loaded.release_pages() == 0  # nothing mapped: nothing to let go
    ref = idx.search(q, K, exclude=exclude, blocked=ext[5:8])
    for _ in range(2):
        for got, want in zip(
            mapped.search(q, K, exclude=exclude, blocked=ext[5:8]), ref, strict=True
        ):
            np.testing.assert_array_equal(got, want)
        if sys.platform == "linux":
            assert mapped.release_pages() > 0


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_released_pages_leave_the_resident_set(tmp_path):
    """A mapped index's pages count in the process once touched, and leave it once released."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((60_000, 64)).astype(np.float32)  # 15 MB of vectors
    build_index(x, exact_threshold=10**9).save(tmp_path, "big")
    del x
    idx = VectorIndex.load(tmp_path, "big", mmap=True)
    assert idx.kind == "exact" and idx.mapped

    def file_pages_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssFile:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no RssFile")

    q = rng.standard_normal((2, 64)).astype(np.float32)
    before = file_pages_mb()
    scores, ids = idx.search(q, 5)  # an exact search reads every vector
    touched = file_pages_mb()
    assert touched - before > 12
    released = idx.release_pages()
    assert released > 14 * 2**20
    assert touched - file_pages_mb() > 12
    again = idx.search(q, 5)  # the pages come back from the page cache
    np.testing.assert_array_equal(again[1], ids)
    np.testing.assert_array_equal(again[0], scores)


def test_load_errors(tmp_path):
    build_index(FIVE).save(tmp_path, "x")
    meta = tmp_path / "x.meta.json"
    data = json.loads(meta.read_text())
    meta.write_text(json.dumps({**data, "ntotal": 6}))
    with pytest.raises(ArtifactError):
        VectorIndex.load(tmp_path, "x")
    meta.write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(ArtifactError):
        VectorIndex.load(tmp_path, "x")
    (tmp_path / "x.ids.npy").unlink()
    with pytest.raises(ArtifactError):
        VectorIndex.load(tmp_path, "x")
    with pytest.raises(ValueError):
        build_index(FIVE).save(tmp_path, "../escape")


# ------------------------------------------------------------ validation
def test_invalid_arguments():
    idx = build_index(FIVE)
    for bad_k in (0, -1, 2.5):
        with pytest.raises(ValueError):
            idx.search(FIVE, bad_k)
    with pytest.raises(ValueError):
        idx.search(np.ones((2, 3), np.float32), 2)
    with pytest.raises(ValueError):
        idx.search(np.array([[np.nan, 1]], np.float32), 2)
    with pytest.raises(ValueError):
        idx.search(FIVE, 2, exclude=[[1]])
    with pytest.raises(ValueError):
        build_index(FIVE, ids=np.array([1, 1, 2, 3, 4]))
    with pytest.raises(ValueError):
        build_index(FIVE, ids=np.array([-1, 1, 2, 3, 4]))
    with pytest.raises(ValueError):
        build_index(FIVE, ids=np.arange(4))
    with pytest.raises(ValueError):
        build_index(np.array([[np.inf, 0]], np.float32))
    with pytest.raises(ValueError):
        build_index(FIVE, metric="l2")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        build_index(FIVE, hnsw_space="l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        build_index(np.ones(5, np.float32))


def test_one_dimensional_query_and_flat_exclude():
    idx = build_index(FIVE)
    scores, ids = idx.search(np.array([3.0, 1.0]), 2, exclude=np.array([4]))
    assert ids.shape == (1, 2)
    np.testing.assert_array_equal(ids, [[2, 0]])


@pytest.mark.parametrize("kind_threshold", [10**9, 0], ids=["exact", "hnsw"])
def test_cosine_zero_vectors_are_safe(kind_threshold):
    x = np.vstack([FIVE, np.zeros((1, 2), np.float32)])
    idx = build_index(x, metric="cosine", exact_threshold=kind_threshold)
    scores, ids = idx.search(np.array([[0, 0], [1, 0]], np.float32), 6)
    assert np.all(np.isfinite(scores))
    assert np.allclose(scores[0], 0)  # the zero query is orthogonal to everything
    assert scores[1, list(ids[1]).index(5)] == pytest.approx(0.0, abs=1e-6)


def test_index_does_not_keep_or_alias_the_input():
    x = np.random.default_rng(0).standard_normal((200, 4)).astype(np.float32)
    q = x[:3].copy()
    for threshold in (10**9, 0):
        idx = build_index(x, exact_threshold=threshold)
        before = idx.search(q, K)
        x_saved = x.copy()
        x[:] = 0  # the caller reuses its buffer
        after = idx.search(q, K)
        x[:] = x_saved
        for a, b in zip(before, after, strict=True):
            np.testing.assert_array_equal(a, b)
        # The vectors used for scores/fallbacks are a view on faiss's storage, not a copy.
        assert not idx._stored.flags.owndata
        assert idx.memory_bytes >= x.nbytes


def test_thread_policy_single_thread_for_small_batches(monkeypatch):
    idx = build_index(FIVE)
    seen: list[int | None] = []
    original = index_mod.omp_threads

    def spy(n):
        seen.append(n)
        return original(n)

    monkeypatch.setattr(index_mod, "omp_threads", spy)
    idx.search(FIVE[0], 2)
    idx.search(np.tile(FIVE, (20, 1)), 2)  # 100 queries
    assert seen == [1, None]


def test_omp_threads_restores_previous_setting():
    import faiss

    from recsys.retrieval import omp_threads

    before = faiss.omp_get_max_threads()
    with omp_threads(1):
        assert faiss.omp_get_max_threads() == 1
    assert faiss.omp_get_max_threads() == before


# -------------------------------------------------------------- property
@st.composite
def pools(draw):
    n = draw(st.integers(0, 25))
    d = draw(st.integers(1, 4))
    # Small integers: every dot product is exact in float32, so faiss and the
    # float64 reference agree bit for bit and ties are true ties.
    cells = st.integers(-3, 3)
    x = np.array(draw(st.lists(cells, min_size=n * d, max_size=n * d)), dtype=np.float32).reshape(
        n, d
    )
    m = draw(st.integers(1, 4))
    q = np.array(draw(st.lists(cells, min_size=m * d, max_size=m * d)), dtype=np.float32).reshape(
        m, d
    )
    ids = np.array(
        draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n, unique=True)), dtype=np.int64
    )
    id_pool = st.sampled_from(ids.tolist() + [10**7]) if n else st.just(10**7)
    exclude = [np.array(draw(st.lists(id_pool, max_size=30)), dtype=np.int64) for _ in range(m)]
    blocked = np.array(draw(st.lists(id_pool, max_size=8)), dtype=np.int64)
    k = draw(st.integers(1, 30))
    # A small over-fetch cap sends queries down the selector fallback paths too.
    cap = draw(st.sampled_from([0, 2, index_mod.MAX_OVERFETCH_EXTRA]))
    return x, ids, q, exclude, blocked, k, cap


def check_against_brute_force(x, ids, q, exclude, blocked, k, scores, got, exact: bool) -> None:
    all_scores = q.astype(np.float64) @ x.astype(np.float64).T
    by_id = {int(i): c for c, i in enumerate(ids)}
    banned = [set(blocked.tolist()) | set(e.tolist()) for e in exclude]
    n_eligible = np.array([sum(int(i) not in b for i in ids) for b in banned])
    assert_well_formed(scores, got, k, n_eligible, banned)
    for r in range(len(q)):
        real = got[r][got[r] >= 0]
        cols = [by_id[int(i)] for i in real]
        np.testing.assert_array_equal(scores[r, : len(real)], all_scores[r, cols])
        if exact:
            eligible = [c for c, i in enumerate(ids) if int(i) not in banned[r]]
            best = np.sort(all_scores[r, eligible])[::-1][:k]
            np.testing.assert_array_equal(scores[r, : len(real)], best)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pools())
def test_property_exact_is_top_k_of_brute_force(case):
    x, ids, q, exclude, blocked, k, cap = case
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(index_mod, "MAX_OVERFETCH_EXTRA", cap)
        scores, got = build_index(x, ids).search(q, k, exclude=exclude, blocked=blocked)
    check_against_brute_force(x, ids, q, exclude, blocked, k, scores, got, exact=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pools())
def test_property_hnsw_invariants(case):
    # HNSW is approximate: check everything except exact optimality.  Tiny pools
    # with many exclusions exercise the selector and exhaustive fallbacks.
    x, ids, q, exclude, blocked, k, cap = case
    idx = build_index(x, ids, exact_threshold=0, hnsw_m=4, ef_search=4, ef_construction=8)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(index_mod, "MAX_OVERFETCH_EXTRA", cap)
        scores, got = idx.search(q, k, exclude=exclude, blocked=blocked)
    check_against_brute_force(x, ids, q, exclude, blocked, k, scores, got, exact=False)


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_single_query_path_answers_as_the_batch_path(monkeypatch, metric):
    """One query takes VectorIndex._search_one; a batch of two takes the staged path.

    Both must give the same ids and scores for every mix of exclusions and blocked
    ids: none, a few, the query's own top results (so the first pass comes up
    short and the stages take over), ids outside the index.
    """
    x, q = clustered(4_000, 16, seed=5)
    idx = build_index(x, ids=np.arange(len(x)) * 3 + 1, metric=metric, exact_threshold=0)
    external = np.arange(len(x)) * 3 + 1
    _, top = brute_force(x, external, q, 300, metric=metric)
    rng = np.random.default_rng(0)
    taken: list[int] = []
    real_one = idx._search_one

    def spy(*args, **kwargs):
        out = real_one(*args, **kwargs)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(idx, "_search_one", spy)
    for r in range(len(q)):
        case = r % 5
        exclude = None
        blocked = None
        if case == 1:
            exclude = [rng.choice(external, 20, replace=False)]
        elif case == 2:
            exclude = [top[r, : 150 + r % 100]]  # beyond efSearch's first pass
        elif case == 3:
            exclude = [np.r_[top[r, :5], [0, 2, 10**9]]]  # with ids not in the index
            blocked = top[r, 5:10]
        elif case == 4:
            blocked = top[(r + 1) % len(q), :50]
        k = 10 + r % 40
        one_s, one_i = idx.search(q[r], k, exclude=exclude, blocked=blocked)
        two = np.stack([q[r], q[r]])
        both = None if exclude is None else [exclude[0], exclude[0]]
        two_s, two_i = idx.search(two, k, exclude=both, blocked=blocked)
        np.testing.assert_array_equal(one_i[0], two_i[0])
        np.testing.assert_array_equal(one_s[0], two_s[0])
        banned = set() if exclude is None else set(exclude[0].tolist())
        banned |= set() if blocked is None else set(blocked.tolist())
        assert_well_formed(one_s, one_i, k, len(x) - len(banned), [banned])
    # The fast path answered most queries and handed the hard ones on.
    assert 0 < taken.count(False) < taken.count(True)


def test_a_mapped_index_outlives_its_deleted_files(tmp_path):
    """Pruning an old artifact while a server still maps it must not break its searches."""
    x, q = clustered(3_000, 8, seed=21)
    idx = build_index(x, exact_threshold=0, ef_search=40, storage="float16", hnsw_space="ip")
    idx.save(tmp_path, "gone")
    mapped = VectorIndex.load(tmp_path, "gone", mmap=True)
    want = mapped.search(q, K)
    mapped.release_pages()  # the next search reads the pages back from the deleted file
    for p in tmp_path.iterdir():
        p.unlink()
    got = mapped.search(q, K)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
