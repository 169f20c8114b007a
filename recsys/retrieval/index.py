"""Vector indexes over the trusted pool: exact (flat) or HNSW, with exclusions.

The engine builds an index only over tracks already in the trusted pool, so this
module never filters for trust itself; it answers "top-k pool tracks for these
queries, leaving out these ids".  Two metrics:

``"ip"``
    Maximum inner product (user factor -> track factors of an implicit ALS model).
``"cosine"``
    Item -> item similarity; vectors and queries are L2-normalised (zero vectors
    stay zero and score 0 against everything).

Scores returned are always the inner products in the original space (the cosine
for ``"cosine"``), never faiss's internal distances.

Index kinds
-----------
``"exact"`` (``n < exact_threshold``)
    ``faiss.IndexFlatIP`` over the (normalised for cosine) vectors.
``"hnsw"``
    ``faiss.IndexHNSWFlat`` with the L2 metric over vectors augmented with one
    coordinate: ``x' = [x, sqrt(M^2 - |x|^2)]`` with ``M`` the largest norm, and
    queries ``q' = [q, 0]``.  Then ``|q' - x'|^2 = |q|^2 + M^2 - 2 q.x`` so the L2
    order is the inner-product order: the standard reduction of MIPS to nearest
    neighbour search, which lets HNSW work in a true metric space
    (``hnsw_space="l2-augmented"``).  Cosine can use the same path (all norms are 1
    or 0), which also handles zero vectors.

    Caveat, measured: when item norms are spread out, as with implicit-ALS item
    factors whose norm tracks popularity, the reduction puts every query far from
    all data and the graph search degrades.  On implicit-ALS factors (64-d, 13K
    items with interactions, from a synthetic power-law listening matrix) recall@20
    at efSearch=128 was 0.54 with the reduction versus 0.9995 for an HNSW graph on
    raw inner product; on clustered data with mild norm spread both are >= 0.95.
    ``hnsw_space="ip"`` builds ``IndexHNSWFlat(d, M, METRIC_INNER_PRODUCT)``
    instead; everything else (scores, exclusions, fallbacks, persistence) is the
    same.  ``benchmarks/bench_retrieval.py --hnsw-space`` compares them.  Because
    the engine's vectors are ALS factors, ``"ip"`` is the default: on a 200K x 64
    benchmark pool recall@20 was 0.985 (``ip``) against 0.440 (reduction), and on
    1M x 64, 0.987 against 0.261.

Memory
------
The vectors live once, inside faiss, as float32 or (``storage="float16"``, HNSW
graphs in the ``"ip"`` space: the training default, ``RetrievalConfig.hnsw_storage``)
as float16, which halves them and makes a search over a large pool cheaper (it is
bound by memory latency).  With float16, the search, the exact scores and the
vectors handed out (:attr:`VectorIndex.vectors`) are the stored, rounded ones.
Exact scores (HNSW) and the exact last-resort search read them through a
zero-copy numpy view of the storage (``IndexFlat.get_xb``, or the float16 codes)
and faiss's own storage index, so no second copy is kept.  A 1M x 64 HNSW index
holds 1M x 65 float32 (260 MB; 1M x 64 for the IP graph, 128 MB in float16)
plus the graph (about 260 bytes per vector at ``M=32``) plus 8 bytes per
id (and, for non-contiguous ids, 16 more per vector for the id lookup, built on
first use by exclusions).  During the build a
temporary augmented/normalised copy exists (freed before returning); it is added
in one call because chunked adds let faiss's growing ``std::vector`` keep spare
capacity (measured ~60 MB more resident at 1M x 64).

Exclusions
----------
Per-query ``exclude`` arrays and a global ``blocked`` array are applied inside the
search: each query over-fetches ``k + (number of its excluded ids in the index)``
(capped at :data:`MAX_OVERFETCH_EXTRA`, rounded up to a power of two) in one
vectorised faiss call per fetch size, and the excluded ids are filtered out.  For
the exact index this is guaranteed to leave ``k`` eligible items when the cap is
not hit.  HNSW first over-fetches only up to ``efSearch`` results (free: the graph
search collects that many anyway), which suffices when few excluded items lie
near the query; only queries still short run the larger fetch.  A query that
still comes up short is searched again alone with a faiss ``IDSelector`` that
rejects its excluded ids; for HNSW, if even that is short, an exact search of the
flat storage with the same selector settles it.  Hence ``k`` results come back
whenever ``k`` eligible items exist.  For HNSW the ``blocked`` set is passed as a
selector to the batched search as well (cheap for graph search); for the exact
index it is over-fetched unless large, because a selector makes faiss's flat
search leave its BLAS path (measured 1.8x slower on batches).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import logging
import math
import mmap as _mmap
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import faiss
import numpy as np

from recsys.errors import ArtifactError
from recsys.retrieval.threads import omp_threads

logger = logging.getLogger(__name__)

Metric = Literal["ip", "cosine"]
Kind = Literal["exact", "hnsw"]
HnswSpace = Literal["l2-augmented", "ip"]
Storage = Literal["float32", "float16"]

#: Version of the on-disk layout written by :meth:`VectorIndex.save`.
FORMAT_VERSION = 1

#: Batches with fewer queries than this run faiss on one OpenMP thread (see
#: :mod:`recsys.retrieval.threads` for the measurements behind it).
SINGLE_THREAD_MAX_QUERIES = 64

#: Largest number of extra results a query over-fetches to make room for its
#: exclusions.  Beyond it, the over-fetch is capped and short queries go to the
#: selector path; HNSW cost grows with the fetch size (``efSearch >= fetch``).
MAX_OVERFETCH_EXTRA = 512

# Upper bound on queries x fetch entries handled by one faiss call, so that the
# label/distance/mask matrices of a large batch stay around 100 MB.
_MAX_BLOCK_ENTRIES = 1 << 22
# Upper bound on the float32 elements gathered at once to recompute exact scores.
_MAX_GATHER_ELEMENTS = 1 << 23
# Largest HNSW search breadth of the per-query selector fallback.
_FALLBACK_MAX_EF = 4096
#: When at most this many items remain eligible for a query, the fallback scans
#: them exhaustively: exact, and cheaper than a filtered graph walk, which on an
#: inner-product graph can miss isolated eligible items.
_EXACT_WHEN_ELIGIBLE_AT_MOST = 20_000
# Rows processed at once when checking build input for NaN/inf (bounds the temp).
_CHECK_CHUNK = 1 << 16


class VectorIndex:
    """Top-k retrieval by inner product or cosine over a fixed set of vectors.

    Build with :func:`build_index` or :meth:`load`; the constructor wraps an
    already-built faiss index and is not meant to be called directly.

    Parameters
    ----------
    index : faiss.Index
        ``IndexFlatIP`` (kind ``"exact"``, dimension ``dim``) or ``IndexHNSWFlat``
        (kind ``"hnsw"``): L2 metric over augmented vectors, dimension ``dim + 1``
        (``hnsw_space="l2-augmented"``), or inner product, dimension ``dim``
        (``hnsw_space="ip"``).
    ids : numpy.ndarray, shape (n,), int64
        External id of each stored vector, in faiss order; unique, non-negative.
    kind : {"exact", "hnsw"}
    metric : {"ip", "cosine"}
    dim : int
        Dimension of the original vectors and queries.
    ef_search : int
        HNSW search breadth (ignored for exact indexes).
    hnsw_m, ef_construction : int
        HNSW build parameters, kept for metadata.
    max_norm : float
        Largest stored vector norm ``M`` used by the MIPS augmentation.
    hnsw_space : {"l2-augmented", "ip"}
        Graph space of an HNSW index (see the module notes).

    Attributes
    ----------
    ef_search : int
        May be changed after construction to trade recall for latency.
    search_threads : int or None
        OpenMP threads for batches of at least :data:`SINGLE_THREAD_MAX_QUERIES`
        queries; ``None`` uses faiss's default (all cores).

    Notes
    -----
    Concurrent :meth:`search` calls from several threads are safe: faiss searches
    do not modify the index, search parameters are passed per call, and the
    thread setting is per calling thread.
    """

    def __init__(
        self,
        index: faiss.Index,
        ids: np.ndarray,
        *,
        kind: Kind,
        metric: Metric,
        dim: int,
        ef_search: int = 128,
        hnsw_m: int = 32,
        ef_construction: int = 100,
        max_norm: float = 0.0,
        hnsw_space: HnswSpace = "ip",
        storage: Storage = "float32",
    ) -> None:
        _check_metric(metric)
        _check_space(hnsw_space)
        _check_storage(storage, kind, hnsw_space)
        if kind not in ("exact", "hnsw"):
            raise ValueError(f"kind must be 'exact' or 'hnsw', got {kind!r}")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.ndim != 1 or ids.shape[0] != index.ntotal:
            raise ValueError(f"ids must have shape ({index.ntotal},), got {ids.shape}")
        # Only the L2-augmented HNSW stores (and is queried with) one extra coordinate.
        self._augmented = kind == "hnsw" and hnsw_space == "l2-augmented"
        stored_dim = dim + 1 if self._augmented else dim
        if index.d != stored_dim:
            raise ValueError(f"faiss index has dimension {index.d}, expected {stored_dim}")
        self._index = index
        self._kind: Kind = kind
        self._metric: Metric = metric
        self._dim = int(dim)
        self.ef_search = int(ef_search)
        self.search_threads: int | None = None
        self._hnsw_m = int(hnsw_m)
        self._ef_construction = int(ef_construction)
        self._max_norm = float(max_norm)
        self._hnsw_space: HnswSpace = hnsw_space
        # The flat storage: the index itself (exact) or the HNSW's storage index.
        # It serves the exact last-resort search and the zero-copy vector view.
        self._storage: Storage = storage
        self._flat = index if kind == "exact" else faiss.downcast_index(index.storage)
        self._stored = _stored_view(self._flat, storage)
        # External id -> position: identity when ids are 0..n-1 (the default),
        # else a sorted copy built on first use (only exclusions need it).
        n = self.ntotal
        self._identity_ids = bool(n == 0 or (ids[0] == 0 and ids[-1] == n - 1 and _is_arange(ids)))
        # Identity ids are not held: positions are the ids (an int64 array of 1M
        # ids is 7.6 MiB per index, twice while a reload holds two artifacts).
        self._ids: np.ndarray | None = None
        if not self._identity_ids:
            self._ids = ids.view()  # read-only view: never flags the caller's array
            self._ids.flags.writeable = False
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ properties
    @property
    def kind(self) -> Kind:
        """``"exact"`` or ``"hnsw"``."""
        return self._kind

    @property
    def metric(self) -> Metric:
        """``"ip"`` or ``"cosine"``."""
        return self._metric

    @property
    def hnsw_space(self) -> HnswSpace:
        """Graph space of an HNSW index (meaningless for exact indexes)."""
        return self._hnsw_space

    @property
    def storage(self) -> Storage:
        """How the vectors are stored: ``"float32"``, or ``"float16"`` (HNSW, ``"ip"`` space)."""
        return self._storage

    @property
    def ntotal(self) -> int:
        """Number of indexed vectors."""
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        """Dimension of the vectors and of the queries."""
        return self._dim

    @property
    def ids(self) -> np.ndarray:
        """External ids in storage order, shape (ntotal,), int64, read-only."""
        if self._ids is None:
            ids = np.arange(self.ntotal, dtype=np.int64)
            ids.flags.writeable = False
            return ids
        return self._ids

    @property
    def faiss_index(self) -> faiss.Index:
        """The underlying faiss index (do not add to or remove from it)."""
        return self._index

    @property
    def vectors(self) -> np.ndarray | None:
        """The stored vectors, zero-copy and read-only, shape (ntotal, dim); row ``i`` is id ``i``.

        What faiss holds: the vectors as given to :func:`build_index` for
        ``"ip"``, row-normalised ones for ``"cosine"`` (exactly the vectors the
        search scores), float32, or float16 for ``storage="float16"``. ``None``
        when they cannot be shown that way without a copy: augmented HNSW
        storage, or ids other than ``0 .. ntotal - 1``. Valid as long as this
        index is alive.
        """
        if self._augmented or not self._identity_ids:
            return None
        return self._stored

    @property
    def mapped(self) -> bool:
        """Whether the vectors (and graph) are pages of the index file (``load(mmap=True)``)."""
        return any(self._mapped_ranges())

    def release_pages(self) -> int:
        """Let go of the pages of a memory-mapped index this process holds.

        The pages stay in the kernel's page cache and come back, without
        reading the disk, when a search next touches them; the index stays
        valid. A server calls this on a freshly loaded artifact that will not
        answer until the swap, so that its checks (faiss walks every neighbour
        list when reading a graph) do not keep it resident beside the artifact
        still serving. Nothing happens for an index that was copied into
        memory, or off Linux.

        Returns
        -------
        int
            Bytes of mapping advised (whole pages).
        """
        advice = getattr(_mmap, "MADV_DONTNEED", None)
        libc = _libc()
        if advice is None or libc is None:
            return 0
        done = 0
        page = _mmap.PAGESIZE
        for address, nbytes in self._mapped_ranges():
            start = -(-address // page) * page  # whole pages inside the range only
            end = (address + nbytes) // page * page
            if (
                end > start
                and libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), advice) == 0
            ):
                done += end - start
        return done

    def _mapped_ranges(self) -> Iterator[tuple[int, int]]:
        """``(address, nbytes)`` of the graph and vectors when they are views of a mapped file."""
        if self._kind == "hnsw":
            neighbors = self._index.hnsw.neighbors
            if not neighbors.is_owned and neighbors.size():
                yield _address(neighbors.data(), neighbors.size())
        codes = getattr(self._flat, "codes", None)
        if codes is not None and not codes.is_owned and codes.size():
            yield _address(codes.data(), codes.size())

    @property
    def memory_bytes(self) -> int:
        """Approximate bytes held by the index: vectors, graph, ids, id lookup."""
        total = self._stored.nbytes + (self._ids.nbytes if self._ids is not None else 0)
        if self._kind == "hnsw":
            hnsw = self._index.hnsw
            total += hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4
        if self._lookup is not None:
            total += self._lookup[0].nbytes + self._lookup[1].nbytes
        return int(total)

    def __repr__(self) -> str:
        return (
            f"VectorIndex(kind={self._kind!r}, metric={self._metric!r}, "
            f"ntotal={self.ntotal}, dim={self._dim})"
        )

    # ---------------------------------------------------------------------- search
    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: Sequence[np.ndarray | Sequence[int] | None] | None = None,
        blocked: np.ndarray | Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the ``k`` best non-excluded items for each query.

        Parameters
        ----------
        queries : numpy.ndarray, shape (m, dim) or (dim,)
            Query vectors (a 1-D array is one query).  Converted to float32;
            normalised for the cosine metric.
        k : int
            Number of results per query, >= 1.  May exceed ``ntotal``.
        exclude : sequence of m array-likes of int64, optional
            ``exclude[i]`` holds external ids never to return for query ``i``
            (ids not in the index are ignored; ``None`` entries mean none).
        blocked : array-like of int64, shape (b,), optional
            External ids never to return for any query.

        Returns
        -------
        scores : numpy.ndarray, shape (m, k), float32
            Inner products (cosines for ``"cosine"``) in the original space,
            descending along each row.
        ids : numpy.ndarray, shape (m, k), int64
            External ids; no excluded or blocked id and no duplicate in a row.
            A row is padded with ``-1`` ids and ``-inf`` scores only when fewer
            than ``k`` eligible items exist for it.

        Raises
        ------
        ValueError
            If ``k < 1``, the query shape or values are invalid, or ``exclude``
            does not have one entry per query.
        """
        k = _as_k(k)
        q = self._prepare_queries(queries)
        m, n = q.shape[0], self.ntotal
        blocked_pos = self._positions(blocked)
        if m == 1 and n > 0 and self._kind == "hnsw":
            found = self._search_one(q, k, exclude, blocked_pos)
            if found is not None:
                return found
        pair_keys, per_row_excl = self._exclusion_pairs(exclude, m)
        positions = np.full((m, k), -1, dtype=np.int64)
        scores = np.full((m, k), -np.inf, dtype=np.float32)
        if m == 0 or n == 0:
            return scores, positions

        if blocked_pos.size and pair_keys.size:
            # Count each excluded item once: drop per-query ids already blocked.
            keep = ~_isin_sorted(blocked_pos, pair_keys % n)
            pair_keys = pair_keys[keep]
            per_row_excl = np.bincount(pair_keys // n, minlength=m)
        n_blocked = int(blocked_pos.size)
        want = np.minimum(k, n - n_blocked - per_row_excl)
        blocked_in_selector = n_blocked > 0 and (
            self._kind == "hnsw" or n_blocked > MAX_OVERFETCH_EXTRA
        )
        # Built once per call: the set of blocked positions and its complement.
        blocked_batch = faiss.IDSelectorBatch(blocked_pos) if n_blocked else None
        blocked_sel = faiss.IDSelectorNot(blocked_batch) if n_blocked else None
        extra = per_row_excl + (0 if blocked_in_selector else n_blocked)
        # Enough to survive every exclusion (up to the cap), rounded up to a power
        # of two so that queries fall into few fetch sizes, i.e. few faiss calls.
        full = np.minimum(n, k + _next_pow2(np.minimum(extra, MAX_OVERFETCH_EXTRA)))
        stages = [full]
        if self._kind == "hnsw":
            # HNSW does the work of max(efSearch, fetch) results whatever the fetch,
            # so a first pass over-fetching up to efSearch is free; it suffices
            # whenever few excluded items are near the query (random exclusions).
            # Only queries still short pay for the larger fetch.
            free = np.minimum(n, max(self.ef_search, k))
            first = np.where(extra > 0, free, min(n, k))
            # Second pass only where it fetches more; 0 sends a short query on to
            # the per-query fallback.
            stages = [first, np.where(full > first, full, 0)]

        threads = 1 if m < SINGLE_THREAD_MAX_QUERIES else self.search_threads
        todo = np.arange(m)
        with omp_threads(threads):
            for fetch in stages:
                short: list[np.ndarray] = []
                for kf in np.unique(fetch[todo]).tolist():
                    if kf == 0:  # no larger fetch planned: straight to the fallback
                        short.append(todo[fetch[todo] == 0])
                        continue
                    rows_k = todo[fetch[todo] == kf]
                    step = max(1, _MAX_BLOCK_ENTRIES // kf)
                    for start in range(0, rows_k.size, step):
                        short.append(
                            self._overfetch(
                                q,
                                rows_k[start : start + step],
                                int(kf),
                                k,
                                pair_keys,
                                blocked_pos,
                                blocked_sel if blocked_in_selector else None,
                                want,
                                positions,
                                scores,
                            )
                        )
                todo = np.sort(np.concatenate(short)) if short else np.empty(0, dtype=np.int64)
                if todo.size == 0:
                    break
            if todo.size:
                logger.debug("%d of %d queries fell back to selector search", todo.size, m)
            for row in todo.tolist():
                self._fallback(
                    q, row, k, pair_keys, blocked_pos, blocked_batch, blocked_sel, positions, scores
                )

        if self._kind == "hnsw":
            self._exact_scores_sorted(q, positions, scores)
        return scores, self._external(positions)

    def rank(self, query: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score given ids for one query exactly and order them best first.

        The last step of :meth:`search` on its own: what a search returns when
        it found exactly these ids (used with answers stored at publish time,
        :mod:`recsys.retrieval.answers`).

        Parameters
        ----------
        query : numpy.ndarray, shape (dim,) or (1, dim)
            Prepared as :meth:`search` prepares it (normalised for cosine).
        ids : numpy.ndarray, shape (k,), int64
            External ids held by the index, no duplicates.

        Returns
        -------
        scores : numpy.ndarray, shape (k,), float32
            Inner products (cosines for ``"cosine"``), descending.
        ids : numpy.ndarray, shape (k,), int64
            The ids in that order.

        Raises
        ------
        ValueError
            If an id is not in the index, or the query shape is invalid.
        """
        q = self._prepare_queries(query)
        if q.shape[0] != 1:
            raise ValueError("rank takes one query")
        ext = np.asarray(ids, dtype=np.int64).ravel()
        pos, found = self._lookup_positions(ext)
        if not found.all():
            raise ValueError("rank: ids not in the index")
        positions = pos[None, :].copy()
        scores = np.empty(positions.shape, dtype=np.float32)
        self._exact_scores_sorted(q, positions, scores)
        return scores[0], self._external(positions[0])

    def _search_one(
        self,
        q: np.ndarray,
        k: int,
        exclude: Sequence[Any] | None,
        blocked_pos: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """One query on an HNSW index: the first stage of :meth:`search`, without its batch work.

        A server asks one query at a time, and the batched path spends about
        0.5 ms of numpy bookkeeping on a single one (exclusion keys, fetch
        groups, per-row sorts), as much as the graph search itself. This runs the
        same first pass (one faiss call fetching up to ``efSearch`` results when
        something is excluded, blocked ids in the selector, exact scores, best
        first) on flat arrays. Returns ``None`` when that pass came up short or
        saw a duplicate, or the arguments need the general path's checks; the
        caller then runs :meth:`search`'s stages, which give the same answer
        whenever this one returns.
        """
        if exclude is None:
            row_excl = None
        elif isinstance(exclude, np.ndarray) and exclude.ndim == 1:
            row_excl = exclude
        elif len(exclude) == 1:
            row_excl = exclude[0]
        else:
            return None  # the general path raises the error
        n = self.ntotal
        excl = self._positions(row_excl)
        if blocked_pos.size and excl.size:
            excl = excl[~_isin_sorted(blocked_pos, excl)]  # count each excluded item once
        want = min(k, n - blocked_pos.size - excl.size)
        fetch = min(n, max(self.ef_search, k)) if excl.size else min(n, k)
        sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(blocked_pos)) if blocked_pos.size else None
        with omp_threads(1):
            _, pos = self._raw_search(q, fetch, sel)
        pos = pos[0]
        keep = pos >= 0
        if excl.size:
            keep &= ~_isin_sorted(excl, pos)
        got = pos[keep][:k]
        if got.size < want:
            return None
        if got.size > 1:
            srt = np.sort(got)
            if (srt[1:] == srt[:-1]).any():
                return None
        positions = np.full((1, k), -1, dtype=np.int64)
        scores = np.full((1, k), -np.inf, dtype=np.float32)
        positions[0, : got.size] = got
        self._exact_scores_sorted(q, positions, scores)
        return scores, self._external(positions)

    def _overfetch(
        self,
        q: np.ndarray,
        rows: np.ndarray,
        kf: int,
        k: int,
        pair_keys: np.ndarray,
        blocked_pos: np.ndarray,
        blocked_sel: faiss.IDSelector | None,
        want: np.ndarray,
        positions: np.ndarray,
        scores: np.ndarray,
    ) -> np.ndarray:
        """Search ``rows`` with ``kf`` results each, filter, write the first ``k``.

        Returns the rows (int64 array) that ended with fewer than ``want`` items.
        """
        dist, pos = self._raw_search(q[rows], kf, blocked_sel)
        valid = pos >= 0
        if blocked_pos.size and blocked_sel is None:
            valid &= ~_isin_sorted(blocked_pos, pos)
        if pair_keys.size:
            valid &= ~_isin_sorted(pair_keys, rows[:, None] * self.ntotal + pos)
        # Stable sort on "not valid" moves valid entries first, keeping faiss's
        # best-first order: a vectorised "first k valid of each row".
        order = np.argsort(~valid, axis=1, kind="stable")[:, :k]
        width = order.shape[1]
        top_pos = np.take_along_axis(pos, order, axis=1)
        top_ok = np.take_along_axis(valid, order, axis=1)
        top_pos[~top_ok] = -1
        positions[rows, :width] = top_pos
        if self._kind == "exact":
            top_dist = np.take_along_axis(dist, order, axis=1)
            top_dist[~top_ok] = -np.inf
            scores[rows, :width] = top_dist
        count = top_ok.sum(axis=1)
        is_short = count < want[rows]
        if self._kind == "hnsw":
            # faiss's HNSW does not return duplicates; this cheap check makes the
            # "no duplicates" promise independent of that (a row with one is
            # redone through the selector path).
            srt = np.sort(top_pos, axis=1)
            is_short |= ((srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)).any(axis=1)
        return rows[is_short]

    def _fallback(
        self,
        q: np.ndarray,
        row: int,
        k: int,
        pair_keys: np.ndarray,
        blocked_pos: np.ndarray,
        blocked_batch: faiss.IDSelector | None,
        blocked_sel: faiss.IDSelector | None,
        positions: np.ndarray,
        scores: np.ndarray,
    ) -> None:
        """Redo one query with an IDSelector; exact storage search as last resort.

        ``blocked_batch`` selects the blocked positions, ``blocked_sel`` is its
        complement (both ``None`` when nothing is blocked).
        """
        n = self.ntotal
        lo, hi = np.searchsorted(pair_keys, [row * n, (row + 1) * n])
        row_pos = pair_keys[lo:hi] - row * n
        n_eligible = n - blocked_pos.size - row_pos.size
        kk = min(k, n)
        if row_pos.size:
            row_sel = faiss.IDSelectorBatch(row_pos)
            inner = (
                faiss.IDSelectorOr(blocked_batch, row_sel) if blocked_batch is not None else row_sel
            )
            sel: faiss.IDSelector | None = faiss.IDSelectorNot(inner)
        else:
            sel = blocked_sel
        qi = q[row : row + 1]
        if self._kind == "hnsw" and n_eligible <= _EXACT_WHEN_ELIGIBLE_AT_MOST:
            dist, pos = self._exact_storage_search(qi, kk, sel)
        else:
            dist, pos = self._selector_search(qi, kk, sel, n - n_eligible)
        got = pos[pos >= 0]
        if self._kind == "hnsw":
            # Keep first occurrences only (see the duplicate check in _overfetch).
            _, first = np.unique(got, return_index=True)
            got = got[np.sort(first)]
        if got.size < min(k, n_eligible) and self._kind == "hnsw":
            logger.debug("query %d: HNSW selector search short, exact search", row)
            dist, pos = self._exact_storage_search(qi, kk, sel)
            got = pos[pos >= 0]
        got = got[:k]
        positions[row] = -1
        positions[row, : got.size] = got
        if self._kind == "exact":
            scores[row] = -np.inf
            scores[row, : got.size] = dist[pos >= 0][: got.size]

    def _raw_search(
        self, q: np.ndarray, kf: int, sel: faiss.IDSelector | None, ef: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """One faiss search call; ``efSearch`` raised to ``kf`` for HNSW.

        Parameters go per call (not by mutating ``hnsw.efSearch``) so concurrent
        searches on one index do not race.
        """
        params: faiss.SearchParameters | None
        if self._kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, kf, ef))
            if sel is not None:
                params.sel = sel
        else:
            params = faiss.SearchParameters(sel=sel) if sel is not None else None
        return self._index.search(q, kf, params=params)

    def _selector_search(
        self, q: np.ndarray, kk: int, sel: faiss.IDSelector | None, n_excluded: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search one query with ``sel`` applied inside faiss (exact for flat).

        A filtered HNSW search still walks through the excluded nodes without
        collecting them, so a breadth of only ``efSearch`` ends early when many of
        them surround the query; the breadth grows with the number excluded (up to
        :data:`_FALLBACK_MAX_EF`).  This path is per query and rare.
        """
        ef = max(self.ef_search, min(kk + n_excluded, _FALLBACK_MAX_EF))
        return self._raw_search(q, kk, sel, ef=ef)

    def _exact_storage_search(
        self, q: np.ndarray, kk: int, sel: faiss.IDSelector | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exhaustive search of the flat storage (L2 in the augmented space, or IP)."""
        params = faiss.SearchParameters(sel=sel) if sel is not None else None
        return self._flat.search(q, kk, params=params)

    def _exact_scores_sorted(
        self, q: np.ndarray, positions: np.ndarray, scores: np.ndarray
    ) -> None:
        """Fill ``scores`` with exact inner products and sort rows descending.

        HNSW returns augmented L2 distances; the inner products are recomputed from
        the stored vectors (exact, unlike ``(|q|^2 + M^2 - dist) / 2`` which loses
        precision to cancellation).  Also done for the IP graph so that both spaces
        and the fallback paths share one scoring rule.  Works in row chunks to bound the gather.
        """
        m, k = positions.shape
        d = self._dim
        step = max(1, _MAX_GATHER_ELEMENTS // (k * d))
        for start in range(0, m, step):
            stop = min(m, start + step)
            pos = positions[start:stop]
            ok = pos >= 0
            vecs = self._stored[np.where(ok, pos, 0), :d]
            # Widened first: numpy's mixed float16 x float32 product is the slow path.
            s = np.matmul(vecs.astype(np.float32, copy=False), q[start:stop, :d, None])[:, :, 0]
            s[~ok] = -np.inf
            order = np.argsort(-s, axis=1, kind="stable")
            scores[start:stop] = np.take_along_axis(s, order, axis=1)
            positions[start:stop] = np.take_along_axis(pos, order, axis=1)

    # ------------------------------------------------------------- input handling
    def _prepare_queries(self, queries: np.ndarray) -> np.ndarray:
        """Queries as float32 (m, stored_dim): normalised (cosine), augmented (L2 HNSW)."""
        q = np.asarray(queries)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self._dim:
            raise ValueError(
                f"queries must have shape (m, {self._dim}) or ({self._dim},), got {np.shape(queries)}"
            )
        q = np.asarray(q, dtype=np.float32)
        if not np.isfinite(q).all():
            raise ValueError("queries contain NaN or infinite values")
        if self._metric == "cosine":
            q = _normalised(q)
        if self._augmented:
            aug = np.zeros((q.shape[0], self._dim + 1), dtype=np.float32)
            aug[:, : self._dim] = q
            return aug
        return np.ascontiguousarray(q)

    def _positions(self, external: np.ndarray | Sequence[int] | None) -> np.ndarray:
        """Sorted unique faiss positions of the given external ids (unknown dropped)."""
        if external is None:
            return np.empty(0, dtype=np.int64)
        ext = np.asarray(external, dtype=np.int64).ravel()
        pos, found = self._lookup_positions(ext)
        return _sorted_unique(pos[found])

    def _external(self, positions: np.ndarray) -> np.ndarray:
        """External ids of faiss positions (any shape), -1 kept for -1; int64."""
        if self._ids is None:
            return positions.astype(np.int64, copy=True)
        return np.where(positions >= 0, self._ids[np.maximum(positions, 0)], -1)

    def _lookup_positions(self, ext: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map external ids to positions; returns ``(positions, found_mask)``."""
        n = self.ntotal
        if self._identity_ids:
            found = (ext >= 0) & (ext < n)
            return ext, found
        if self._lookup is None:
            assert self._ids is not None
            perm = np.argsort(self._ids, kind="stable")
            self._lookup = (self._ids[perm], perm)
        sorted_ids, perm = self._lookup
        i = np.minimum(np.searchsorted(sorted_ids, ext), n - 1)
        found = sorted_ids[i] == ext
        return np.where(found, perm[i], -1), found

    def _exclusion_pairs(
        self, exclude: Sequence[Any] | None, m: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Encode per-query exclusions as sorted unique keys ``row * n + position``.

        Returns
        -------
        keys : numpy.ndarray, shape (p,), int64
        per_row : numpy.ndarray, shape (m,), int64
            Number of distinct excluded items in the index for each query.
        """
        n = self.ntotal
        empty = np.empty(0, dtype=np.int64)
        if exclude is None:
            return empty, np.zeros(m, dtype=np.int64)
        if isinstance(exclude, np.ndarray) and exclude.ndim == 1 and m == 1:
            exclude = [exclude]  # one query, one flat array of ids
        if len(exclude) != m:
            raise ValueError(f"exclude must have one entry per query ({m}), got {len(exclude)}")
        arrays = [np.asarray(e if e is not None else (), dtype=np.int64).ravel() for e in exclude]
        lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=m)
        if m == 0 or lengths.sum() == 0 or n == 0:
            return empty, np.zeros(m, dtype=np.int64)
        ext = np.concatenate(arrays)
        rows = np.repeat(np.arange(m, dtype=np.int64), lengths)
        pos, found = self._lookup_positions(ext)
        keys = _sorted_unique(rows[found] * n + pos[found])
        return keys, np.bincount(keys // n, minlength=m)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path | str, name: str) -> list[Path]:
        """Write the index to ``directory`` under ``name``.

        Files: ``{name}.faiss`` (``faiss.write_index``), ``{name}.ids.npy`` and
        ``{name}.meta.json``.  Each is written to a temporary file and renamed, so
        a crash never leaves a half-written file under the final name.

        Returns
        -------
        list of pathlib.Path
            The three files written.
        """
        _check_name(name)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        index_path, ids_path, meta_path = _paths(directory, name)
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": self._kind,
            "metric": self._metric,
            "dim": self._dim,
            "ntotal": self.ntotal,
            "ef_search": self.ef_search,
            "hnsw_m": self._hnsw_m,
            "ef_construction": self._ef_construction,
            "max_norm": self._max_norm,
            "hnsw_space": self._hnsw_space,
            "storage": self._storage,
            "faiss_version": faiss.__version__,
        }
        tmp = index_path.with_name(index_path.name + ".tmp")
        faiss.write_index(self._index, str(tmp))
        os.replace(tmp, index_path)
        tmp = ids_path.with_name(ids_path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, self.ids, allow_pickle=False)
        os.replace(tmp, ids_path)
        tmp = meta_path.with_name(meta_path.name + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
        os.replace(tmp, meta_path)
        return [index_path, ids_path, meta_path]

    @classmethod
    def load(cls, directory: Path | str, name: str, *, mmap: bool = False) -> VectorIndex:
        """Read an index written by :meth:`save`.

        Parameters
        ----------
        directory, name
            Where :meth:`save` wrote the index.
        mmap
            Map the index file into memory read-only (faiss ``IO_FLAG_MMAP_IFC``)
            instead of copying it: the HNSW graph and the stored vectors are then
            pages of the file, which the process holds only once it touches them
            and which processes mapping the same file share. Reading takes a
            fraction of the time (0.2-0.4 s rather than 1-2 s for a 1M-vector
            HNSW index). The file must not change while the index is alive: artifacts
            are written once and renamed into place, never rewritten; deleting
            the file is safe (the mapping keeps it until the index is freed).

        Raises
        ------
        ArtifactError
            If a file is missing or the files disagree with each other.
        """
        _check_name(name)
        index_path, ids_path, meta_path = _paths(Path(directory), name)
        for p in (index_path, ids_path, meta_path):
            if not p.is_file():
                raise ArtifactError(f"index file missing: {p}")
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("format_version") != FORMAT_VERSION:
                raise ArtifactError(
                    f"{meta_path}: unsupported format_version {meta.get('format_version')!r}"
                )
            flags = faiss.IO_FLAG_MMAP_IFC if mmap else 0
            index = faiss.read_index(str(index_path), flags)
            ids = np.load(ids_path, allow_pickle=False)
            if ids.shape != (index.ntotal,) or index.ntotal != meta["ntotal"]:
                raise ArtifactError(
                    f"index {name!r} in {directory}: {index.ntotal} vectors, "
                    f"{ids.shape} ids, meta says {meta['ntotal']}"
                )
            return cls(
                index,
                ids,
                kind=meta["kind"],
                metric=meta["metric"],
                dim=int(meta["dim"]),
                ef_search=int(meta["ef_search"]),
                hnsw_m=int(meta["hnsw_m"]),
                ef_construction=int(meta["ef_construction"]),
                max_norm=float(meta["max_norm"]),
                hnsw_space=meta.get("hnsw_space", "l2-augmented"),
                storage=meta.get("storage", "float32"),
            )
        except (KeyError, ValueError, RuntimeError) as exc:
            raise ArtifactError(f"cannot load index {name!r} from {directory}: {exc}") from exc


def build_index(
    vectors: np.ndarray,
    ids: np.ndarray | None = None,
    *,
    metric: Metric = "ip",
    exact_threshold: int = 50_000,
    hnsw_m: int = 32,
    ef_construction: int = 100,
    ef_search: int = 128,
    random_state: int | None = 0,
    n_threads: int | None = None,
    hnsw_space: HnswSpace = "ip",
    storage: Storage = "float32",
) -> VectorIndex:
    """Build an exact or HNSW index over the trusted-pool vectors.

    Parameters
    ----------
    vectors : numpy.ndarray, shape (n, d)
        Item vectors (float32; other real dtypes are converted).  Must be finite.
    ids : numpy.ndarray, shape (n,), int64, optional
        Unique non-negative external ids; default ``arange(n)``.
    metric : {"ip", "cosine"}
        Inner product (MIPS) or cosine similarity.
    exact_threshold : int
        ``n < exact_threshold`` builds an exact flat index, otherwise HNSW.
    hnsw_m : int
        HNSW neighbours per node (``M``).
    ef_construction, ef_search : int
        HNSW build and search breadth.
    random_state : int or None
        Seed of HNSW's level assignment.  The graph is reproducible only when
        built on one thread (``n_threads=1``): parallel insertion order varies.
    n_threads : int or None
        OpenMP threads for the build; ``None`` uses all (faiss's default).
    hnsw_space : {"l2-augmented", "ip"}
        HNSW graph space: raw inner product (default: far better recall when item
        norms vary widely, as ALS factors' do) or L2 over MIPS-augmented vectors
        (the textbook reduction; see the module notes).  Ignored for exact indexes.
    storage : {"float32", "float16"}
        How an HNSW graph in the ``"ip"`` space stores its vectors. ``"float16"``
        halves their memory and the memory traffic of a search, which is bound by
        memory latency: on the 1M x 64 benchmark pool, a user search in faiss took
        0.37-0.42 ms against 0.49 ms, at recall@20 0.974 for both (see
        ``docs/serving.md``). The graph is built, searched and scored on the
        stored (rounded) vectors. Exact indexes always store float32
        (``storage`` is ignored for them); the augmented L2 space only supports
        float32.

    Returns
    -------
    VectorIndex

    Raises
    ------
    ValueError
        On malformed shapes, non-finite vectors, duplicate or negative ids, or
        invalid parameters.
    """
    _check_metric(metric)
    _check_space(hnsw_space)
    _check_storage(storage)  # before an exact index's float32 replaces it
    x = np.asarray(vectors)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"vectors must have shape (n, d) with d >= 1, got {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"vectors must be real numbers, got dtype {x.dtype}")
    n, d = x.shape
    for start in range(0, n, _CHECK_CHUNK):
        if not np.isfinite(x[start : start + _CHECK_CHUNK]).all():
            raise ValueError("vectors contain NaN or infinite values")
    id_arr = _check_ids(ids, n)
    if hnsw_m < 2 or ef_construction < 1 or ef_search < 1:
        raise ValueError("hnsw_m must be >= 2 and ef_construction, ef_search >= 1")
    kind: Kind = "exact" if n < exact_threshold else "hnsw"
    if kind == "exact":
        storage = "float32"
    _check_storage(storage, kind, hnsw_space)

    t0 = time.perf_counter()
    max_norm = 0.0
    with omp_threads(n_threads):
        if kind == "exact":
            index: faiss.Index = faiss.IndexFlatIP(d)
            if n:
                index.add(_normalised(x) if metric == "cosine" else _float32(x))
        else:
            if hnsw_space == "l2-augmented":
                stored, max_norm = _augmented(x, normalise=metric == "cosine")
                index = faiss.IndexHNSWFlat(d + 1, hnsw_m)  # METRIC_L2 by default
            else:
                stored = _normalised(x) if metric == "cosine" else _float32(x)
                if storage == "float16":
                    if n and float(np.abs(stored).max()) > _FLOAT16_MAX:
                        raise ValueError("vectors exceed the float16 range; use storage='float32'")
                    index = faiss.IndexHNSWSQ(
                        d, faiss.ScalarQuantizer.QT_fp16, hnsw_m, faiss.METRIC_INNER_PRODUCT
                    )
                else:
                    index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
            seed = (
                random_state
                if random_state is not None
                else int(np.random.SeedSequence().entropy % (1 << 31))
            )
            index.hnsw.rng = faiss.RandomGenerator(int(seed))
            if n:
                index.add(stored)
            # Drop the temporary augmented/normalised copy now: faiss holds its own.
            del stored
    logger.info(
        "built %s %s index (%s, %s) over %d x %d vectors in %.2f s",
        kind,
        metric,
        hnsw_space if kind == "hnsw" else "flat",
        storage,
        n,
        d,
        time.perf_counter() - t0,
    )
    return VectorIndex(
        index,
        id_arr,
        kind=kind,
        metric=metric,
        dim=d,
        ef_search=ef_search,
        hnsw_m=hnsw_m,
        ef_construction=ef_construction,
        max_norm=max_norm,
        hnsw_space=hnsw_space,
        storage=storage,
    )


# ---------------------------------------------------------------------- helpers
#: Largest finite float16.
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def _check_storage(storage: str, kind: str | None = None, hnsw_space: str | None = None) -> None:
    """A known storage, and (when ``kind`` is given) one that the index kind and space allow."""
    if storage not in ("float32", "float16"):
        raise ValueError(f"storage must be 'float32' or 'float16', got {storage!r}")
    if kind is not None and storage == "float16" and (kind != "hnsw" or hnsw_space != "ip"):
        raise ValueError("float16 storage is for HNSW graphs in the 'ip' space only")


def _check_metric(metric: str) -> None:
    if metric not in ("ip", "cosine"):
        raise ValueError(f"metric must be 'ip' or 'cosine', got {metric!r}")


def _check_space(space: str) -> None:
    if space not in ("l2-augmented", "ip"):
        raise ValueError(f"hnsw_space must be 'l2-augmented' or 'ip', got {space!r}")


def _as_k(k: int) -> int:
    try:
        k_int = int(k)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"k must be a positive integer, got {k!r}") from exc
    if k_int != k or k_int <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return k_int


def _check_ids(ids: np.ndarray | None, n: int) -> np.ndarray:
    if ids is None:
        return np.arange(n, dtype=np.int64)
    arr = np.asarray(ids)
    if arr.shape != (n,):
        raise ValueError(f"ids must have shape ({n},), got {arr.shape}")
    if n and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {arr.dtype}")
    arr = np.array(arr, dtype=np.int64)  # own copy: the caller may reuse theirs
    if n and arr.min() < 0:
        raise ValueError("ids must be non-negative (-1 marks padding in results)")
    if _sorted_unique(arr).size != n:
        raise ValueError("ids must be unique")
    return arr


def _check_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"invalid index name {name!r}")


def _paths(directory: Path, name: str) -> tuple[Path, Path, Path]:
    return (
        directory / f"{name}.faiss",
        directory / f"{name}.ids.npy",
        directory / f"{name}.meta.json",
    )


@functools.cache
def _libc() -> Any:
    """The C library (for ``madvise``), ``None`` when it cannot be found."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.madvise.restype = ctypes.c_int
    return libc


def _address(pointer: Any, n: int) -> tuple[int, int]:
    """Address and size in bytes of ``n`` items at a faiss (SWIG) pointer (its own item type)."""
    view = faiss.rev_swig_ptr(pointer, n)
    return int(view.ctypes.data), int(view.nbytes)


def _is_arange(ids: np.ndarray) -> bool:
    return bool(np.array_equal(ids, np.arange(ids.shape[0], dtype=np.int64)))


def _float32(x: np.ndarray) -> np.ndarray:
    """C-contiguous float32 (no copy when ``x`` already is)."""
    return np.ascontiguousarray(x, dtype=np.float32)


def _normalised(x: np.ndarray) -> np.ndarray:
    """Row-normalised float32 copy, shape as ``x``; zero rows stay zero."""
    out = np.array(x, dtype=np.float32, order="C")  # always a copy
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))
    norms[norms == 0] = 1.0
    out /= norms[:, None]
    return out


def _augmented(x: np.ndarray, *, normalise: bool) -> tuple[np.ndarray, float]:
    """MIPS -> L2 augmentation ``[x, sqrt(M^2 - |x|^2)]``.

    Returns
    -------
    stored : numpy.ndarray, shape (n, d + 1), float32
    max_norm : float
        ``M``, the largest row norm (after normalisation for cosine).
    """
    n, d = x.shape
    out = np.empty((n, d + 1), dtype=np.float32)
    head = out[:, :d]
    head[...] = x
    sq = np.einsum("ij,ij->i", head, head).astype(np.float64)
    if normalise:
        norms = np.sqrt(sq)
        nz = norms > 0
        # In place on the strided view: no (n, d) temporary.
        head /= np.where(nz, norms, 1.0).astype(np.float32)[:, None]
        sq = np.where(nz, 1.0, 0.0)
    max_sq = float(sq.max()) if n else 0.0
    # Clip: rounding can make M^2 - |x|^2 slightly negative for the longest rows.
    out[:, d] = np.sqrt(np.maximum(max_sq - sq, 0.0))
    return out, math.sqrt(max_sq)


def _stored_view(storage: faiss.Index, kind: Storage) -> np.ndarray:
    """Read-only zero-copy view (ntotal, d) of the stored vectors, float32 or float16.

    A float16 HNSW stores its vectors in an ``IndexScalarQuantizer`` with
    ``QT_fp16``, whose codes are the IEEE half floats, row after row.
    """
    if kind == "float32":
        if not isinstance(faiss.downcast_index(storage), faiss.IndexFlat):
            raise ValueError(f"float32 storage expected, faiss holds {type(storage).__name__}")
        return _flat_view(storage)
    sq = faiss.downcast_index(storage)
    if (
        not isinstance(sq, faiss.IndexScalarQuantizer)
        or sq.sq.qtype != faiss.ScalarQuantizer.QT_fp16
    ):
        raise ValueError(f"float16 storage expected, faiss holds {type(sq).__name__}")
    n, d = int(sq.ntotal), int(sq.d)
    if n == 0:
        return np.empty((0, d), dtype=np.float16)
    raw = faiss.rev_swig_ptr(sq.codes.data(), n * int(sq.code_size))
    view = raw.view(np.float16).reshape(n, d)
    view.flags.writeable = False
    return cast(np.ndarray, view)


def _flat_view(flat: faiss.Index) -> np.ndarray:
    """Read-only zero-copy numpy view (ntotal, d) of a flat index's float32 data.

    Valid while the index is alive and not added to; :class:`VectorIndex` keeps the
    index referenced and never adds after the build.
    """
    n, d = int(flat.ntotal), int(flat.d)
    if n == 0:
        return np.empty((0, d), dtype=np.float32)
    view = faiss.rev_swig_ptr(faiss.downcast_index(flat).get_xb(), n * d).reshape(n, d)
    view.flags.writeable = False
    return cast(np.ndarray, view)


def _isin_sorted(sorted_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Membership of ``values`` (any shape) in the sorted unique ``sorted_keys``."""
    if sorted_keys.size == 0:
        return np.zeros(values.shape, dtype=bool)
    i = np.searchsorted(sorted_keys, values)
    np.minimum(i, sorted_keys.size - 1, out=i)
    return sorted_keys[i] == values


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a 1-D int64 array.

    Sort-and-compare; ``np.unique`` takes a hash-based path in numpy 2.x that was
    much slower here (0.1-0.4 s vs 15 ms for 500K exclusion keys).
    """
    a = np.sort(a)
    if a.size < 2:
        return a
    keep = np.empty(a.size, dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def _next_pow2(x: np.ndarray) -> np.ndarray:
    """Smallest power of two >= x elementwise (0 stays 0), int64.

    Rounding the over-fetch sizes groups queries into few faiss calls.
    """
    x = np.asarray(x, dtype=np.int64)
    out = np.zeros_like(x)
    pos = x > 0
    out[pos] = 1 << np.ceil(np.log2(x[pos])).astype(np.int64)
    return out
