"""Search answers stored with an artifact: the index's own answers for known queries.

Two kinds of query recur in serving with the same vector until the next
artifact: a known user's recommendations (the user's vector, their streamed
items excluded) and an artist radio without a listener (the artist's unit
vector). Their answers depend only on the artifact, so the publishing step
asks the index once per user and per artist, through :meth:`VectorIndex.search`
itself, and stores the ids of the best ``depth`` items, best first
(:class:`StoredAnswers`). A server then answers such a request from the stored
ids and re-scores them exactly (:meth:`VectorIndex.rank`), instead of walking
the HNSW graph again: under load that walk was about a third of the server's
CPU time (docs/serving.md, fifth round).

What stays live, and why the stored answer is the live one:

- Only the first ``k <= depth`` ids are used. An HNSW search gathers
  ``max(efSearch, fetch)`` candidates whatever ``k``, so for ``k <= depth <=
  efSearch`` the ``k`` best of a search for ``k`` are the ``k`` best of the
  stored search; for an exact index the top ``k`` are a prefix of the top
  ``depth``. ``tests/retrieval/test_answers.py`` and
  ``tests/surfaces/test_stored_answers.py`` compare stored and live answers.
- Items taken down after publishing are excluded **before** retrieval, never
  filtered out of an answer: when one of the ``k`` stored ids is blocked now,
  :meth:`StoredAnswers.first` returns ``None`` and the caller runs the live
  search with the blocked ids inside faiss, as it would without stored answers.
- A query without a stored answer (only the most active users get one, see
  :func:`recsys.artifact.publish.compute_stored_answers`), a stored answer
  shorter than ``k`` (a user who streamed nearly everything), any extra
  exclusion from the caller, a personalised radio, a track radio or a ``k``
  deeper than ``depth`` also go to the live search.

Cost: one search per stored query at training time (about 0.17 ms of 2-core
wall time per user on a 100K-item pool, 0.27 ms on a 1M one), hence the cap
on users.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from recsys.errors import ArtifactError
from recsys.retrieval.index import VectorIndex
from recsys.retrieval.threads import omp_threads

logger = logging.getLogger(__name__)

# Queries per search call when computing answers: bounds the temporary
# (queries x fetch) matrices and lets the progress bar move.
_BATCH = 4096


class StoredAnswers:
    """Stored top-``depth`` ids of an index for some of a fixed set of queries.

    Parameters
    ----------
    ids : numpy.ndarray, shape (n_stored, depth), int32
        Row ``j``: the index's external ids answering query ``rows[j]``, best
        first, padded with ``-1`` when fewer items were eligible.
    rows : numpy.ndarray, shape (n_stored,), optional
        The query rows stored, increasing; ``None``: every query,
        ``rows = arange(n_stored)``.
    n_queries : int, optional
        Number of queries in all (stored or not); ``None``: ``n_stored``.
    """

    def __init__(
        self, ids: np.ndarray, rows: np.ndarray | None = None, n_queries: int | None = None
    ) -> None:
        ids = np.asarray(ids)
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ids must be a 2-D integer array, got {ids.dtype} {ids.shape}")
        if ids.size and int(ids.min()) < -1:
            raise ValueError("ids must be >= -1 (-1 pads short answers)")
        n_stored = ids.shape[0]
        rows = np.arange(n_stored) if rows is None else np.asarray(rows)
        n_queries = n_stored if n_queries is None else int(n_queries)
        if rows.shape != (n_stored,) or not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(f"rows must be {n_stored} integers, one per stored answer")
        if n_stored and (rows[0] < 0 or rows[-1] >= n_queries or (np.diff(rows) <= 0).any()):
            raise ValueError(f"rows must increase within 0 .. {n_queries - 1}")
        self.ids = np.ascontiguousarray(ids, dtype=np.int32)
        self.ids.flags.writeable = False
        self.rows = np.ascontiguousarray(rows, dtype=np.int64)
        self.rows.flags.writeable = False
        self._n_queries = n_queries
        # Query row -> stored slot (-1: not stored); 4 bytes per query.
        self._slot = np.full(n_queries, -1, dtype=np.int32)
        self._slot[self.rows] = np.arange(n_stored, dtype=np.int32)

    @property
    def n_queries(self) -> int:
        """Number of queries, stored or not."""
        return self._n_queries

    @property
    def n_stored(self) -> int:
        """Number of queries with a stored answer."""
        return int(self.ids.shape[0])

    @property
    def depth(self) -> int:
        """Ids stored per query."""
        return int(self.ids.shape[1])

    def first(self, row: int, k: int, blocked: np.ndarray | None = None) -> np.ndarray | None:
        """The ``k`` best stored ids of query ``row``, or ``None`` when a live search is needed.

        Parameters
        ----------
        row
            Query row, ``0 <= row < n_queries``.
        k
            Ids wanted (>= 1).
        blocked
            Boolean mask over the index's external ids, shape (n_ids,): taken
            down since the answers were stored. ``None``: nothing blocked.

        Returns
        -------
        numpy.ndarray of int64, shape (k,), or None
            ``None`` when the query has no stored answer, when ``k > depth``,
            when fewer than ``k`` ids are stored for it, or when one of them is
            blocked (the live search then excludes it inside faiss, before
            retrieval).
        """
        if k > self.depth or k < 1:
            return None
        slot = self._slot[row]
        if slot < 0:
            return None
        got = self.ids[slot, :k]
        if got[k - 1] < 0:
            return None
        if blocked is not None and blocked[got].any():
            return None
        return got.astype(np.int64)

    def save(self, path: Path | str) -> Path:
        """Write one uncompressed ``.npz`` (ids, rows, n_queries); the artifact writer renames its directory."""
        path = Path(path)
        with open(path, "wb") as f:
            np.savez(f, ids=self.ids, rows=self.rows, n_queries=np.int64(self._n_queries))
        return path

    @classmethod
    def load(cls, path: Path | str, *, n_queries: int, n_ids: int) -> StoredAnswers:
        """Read answers written by :meth:`save` and check them against the artifact.

        Raises
        ------
        ArtifactError
            If the file is unreadable or inconsistent, was stored for another
            number of queries than ``n_queries``, or names an id outside
            ``-1 .. n_ids - 1``.
        """
        try:
            with np.load(path, allow_pickle=False) as z:
                answers = cls(z["ids"], z["rows"], int(z["n_queries"]))
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(f"stored answers {path} are unreadable: {exc}") from exc
        if answers.n_queries != n_queries:
            raise ArtifactError(
                f"stored answers {path} are for {answers.n_queries} queries, expected {n_queries}"
            )
        if answers.ids.size and int(answers.ids.max()) >= n_ids:
            raise ArtifactError(f"stored answers {path} name ids beyond the index ({n_ids})")
        return answers


def compute_answers(
    index: VectorIndex,
    queries: np.ndarray,
    depth: int,
    *,
    exclude: list[np.ndarray | None] | None = None,
    rows: np.ndarray | None = None,
    desc: str = "answers",
    show_progress: bool = False,
    n_threads: Callable[[], int | None] | None = None,
) -> StoredAnswers:
    """Ask ``index`` for the given queries and keep the best ``depth`` ids of each answer.

    Parameters
    ----------
    index
        The index the server will search (the same object, or one loaded from
        the same files).
    queries : numpy.ndarray, shape (n, dim)
        Query vectors, as the server would pass them to :meth:`VectorIndex.search`.
    depth
        Ids stored per query (>= 1). Keep it at or below the index's
        ``ef_search`` so that every ``k <= depth`` is a prefix of the answer.
    exclude : list of n arrays of int64 (or None), optional
        Per-query external ids to leave out (a user's streamed items); only the
        entries of ``rows`` are read.
    rows : numpy.ndarray of int, shape (m,), optional
        The queries to answer, increasing; ``None``: all of them. The others
        are searched live when asked.
    n_threads : callable, optional
        Asked before each batch of queries: the OpenMP threads faiss may use
        for it (``None``: the calling thread's setting). Lets a caller running
        this beside other work widen it once that work is done.

    Returns
    -------
    StoredAnswers
        ``m`` answers of ``depth`` ids, over ``n`` queries.
    """
    if depth < 1:
        raise ValueError("depth must be >= 1")
    n = len(queries)
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    out = np.full((len(rows), depth), -1, dtype=np.int32)
    t0 = time.perf_counter()
    for lo in tqdm(
        range(0, len(rows), _BATCH), desc=desc, unit="batch", disable=not show_progress or None
    ):
        batch = rows[lo : lo + _BATCH]
        excl = [exclude[r] for r in batch.tolist()] if exclude is not None else None
        with omp_threads(n_threads() if n_threads is not None else None):
            _, ids = index.search(queries[batch], depth, exclude=excl)
        out[lo : lo + len(batch)] = ids
    logger.info(
        "%s: %d of %d queries x %d ids in %.1fs",
        desc,
        len(rows),
        n,
        depth,
        time.perf_counter() - t0,
    )
    return StoredAnswers(out, rows, n)
