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
- A stored answer shorter than ``k`` (a user who streamed nearly everything),
  any extra exclusion from the caller, a personalised radio, a track radio or
  a ``k`` deeper than ``depth`` also go to the live search.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from recsys.errors import ArtifactError
from recsys.retrieval.index import VectorIndex

logger = logging.getLogger(__name__)

# Queries per search call when computing answers: bounds the temporary
# (queries x fetch) matrices and lets the progress bar move.
_BATCH = 4096


class StoredAnswers:
    """Stored top-``depth`` ids of an index for a fixed set of queries.

    Parameters
    ----------
    ids : numpy.ndarray, shape (n_queries, depth), int32
        Row ``r``: the index's external ids answering query ``r``, best first,
        padded with ``-1`` when fewer items were eligible (and all ``-1`` for a
        query that has no vector).
    """

    def __init__(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids)
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ids must be a 2-D integer array, got {ids.dtype} {ids.shape}")
        if ids.size and int(ids.min()) < -1:
            raise ValueError("ids must be >= -1 (-1 pads short answers)")
        self.ids = np.ascontiguousarray(ids, dtype=np.int32)
        self.ids.flags.writeable = False

    @property
    def n_queries(self) -> int:
        """Number of queries answered."""
        return int(self.ids.shape[0])

    @property
    def depth(self) -> int:
        """Ids stored per query."""
        return int(self.ids.shape[1])

    @property
    def nbytes(self) -> int:
        return int(self.ids.nbytes)

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
            ``None`` when ``k > depth``, when fewer than ``k`` ids are stored
            for the query, or when one of them is blocked (the live search then
            excludes it inside faiss, before retrieval).
        """
        if k > self.depth or k < 1:
            return None
        got = self.ids[row, :k]
        if got[k - 1] < 0:
            return None
        if blocked is not None and blocked[got].any():
            return None
        return got.astype(np.int64)

    def save(self, path: Path | str) -> Path:
        """Write the ids as one ``.npy`` file (the artifact's writer renames the directory)."""
        path = Path(path)
        np.save(path, self.ids)
        return path

    @classmethod
    def load(cls, path: Path | str, *, n_queries: int, n_ids: int) -> StoredAnswers:
        """Read answers written by :meth:`save` and check them against the artifact.

        Raises
        ------
        ArtifactError
            If the file is unreadable, has another number of rows than
            ``n_queries``, or names an id outside ``-1 .. n_ids - 1``.
        """
        try:
            ids = np.load(path, allow_pickle=False)
            answers = cls(ids)
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"stored answers {path} are unreadable: {exc}") from exc
        if answers.n_queries != n_queries:
            raise ArtifactError(
                f"stored answers {path} have {answers.n_queries} rows, expected {n_queries}"
            )
        if answers.ids.size and int(answers.ids.max()) >= n_ids:
            raise ArtifactError(f"stored answers {path} name ids beyond the index ({n_ids})")
        return answers


def compute_answers(
    index: VectorIndex,
    queries: np.ndarray,
    depth: int,
    *,
    exclude: list[np.ndarray] | None = None,
    has_query: np.ndarray | None = None,
    desc: str = "answers",
    show_progress: bool = False,
) -> StoredAnswers:
    """Ask ``index`` once per query and keep the best ``depth`` ids of each answer.

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
    exclude : list of n arrays of int64, optional
        Per-query external ids to leave out (a user's streamed items).
    has_query : numpy.ndarray of bool, shape (n,), optional
        Queries without a vector (``False``) get an all ``-1`` row.

    Returns
    -------
    StoredAnswers
        Shape (n, depth).
    """
    if depth < 1:
        raise ValueError("depth must be >= 1")
    n = len(queries)
    out = np.full((n, depth), -1, dtype=np.int32)
    rows = np.arange(n) if has_query is None else np.flatnonzero(has_query)
    t0 = time.perf_counter()
    for lo in tqdm(
        range(0, len(rows), _BATCH), desc=desc, unit="batch", disable=not show_progress or None
    ):
        batch = rows[lo : lo + _BATCH]
        excl = [exclude[r] for r in batch.tolist()] if exclude is not None else None
        _, ids = index.search(queries[batch], depth, exclude=excl)
        out[batch] = ids
    logger.info(
        "%s: %d queries x %d ids in %.1fs", desc, len(rows), depth, time.perf_counter() - t0
    )
    return StoredAnswers(out)
