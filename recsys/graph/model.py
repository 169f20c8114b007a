"""The similar-artist graph as served: per-artist ranked neighbours, with provenance.

On disk (artifact ``graph/``):

``relations.parquet``
    One row per directed relation (:data:`recsys.graph.build.RELATION_COLUMNS`).
``artists.parquet``
    Per artist: pool membership, listeners, seeded, seed distance.
``reviews.parquet`` (when the data directory had a review log)
    The review decisions the run saw (:mod:`recsys.graph.review`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.graph.build import EDITORIAL, LEARNED, PROVENANCES, RELATION_COLUMNS, REVIEWED
from recsys.lookup import codes, index_rows

logger = logging.getLogger(__name__)

GRAPH_DIR = "graph"


class ArtistGraph:
    """Ranked similar artists of every artist, over the artifact's artist rows.

    Parameters
    ----------
    relations
        Frame with :data:`~recsys.graph.build.RELATION_COLUMNS`.
    artist_index
        Artist ids in artifact row order, shape (n_artists,).

    Attributes
    ----------
    relations
        The relations frame (for review export and inspection). A graph read
        from an artifact re-reads it from ``relations.parquet`` on each access
        instead of holding it: a server only needs the arrays below (on the
        1M-track benchmark artifact the frame held about 50 MB).
    indptr
        Shape (n_artists + 1,): neighbours of row ``a`` are
        ``dst[indptr[a]:indptr[a + 1]]``, best first.
    dst, score
        Neighbour rows and scores, shape (n_relations,).
    provenance
        Index into :data:`~recsys.graph.build.PROVENANCES`, shape (n_relations,).
    """

    def __init__(
        self, relations: pd.DataFrame, artist_index: pd.Index, *, source: Path | None = None
    ) -> None:
        # With a source file, the frame is dropped once the arrays are built.
        self._relations = relations if source is None else None
        self._source = source
        n = len(artist_index)
        # In chunks: a server builds this while answering requests (see recsys.lookup).
        src = index_rows(artist_index, relations["artist_id"])
        dst = index_rows(artist_index, relations["similar_artist_id"])
        ok = (src >= 0) & (dst >= 0)
        if not ok.all():
            # An artifact is self-consistent; this only guards hand-edited files.
            logger.warning("graph: %d relations name unknown artists", int((~ok).sum()))
        rank = relations["rank"].to_numpy()
        order = np.lexsort((rank[ok], src[ok]))
        src = src[ok][order]
        self.dst = dst[ok][order].astype(np.int64)
        self.score = relations["score"].to_numpy(np.float64)[ok][order]
        prov = codes(relations["provenance"], {p: i for i, p in enumerate(PROVENANCES)})
        self.provenance = prov[ok][order].astype(np.int8)
        self.indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=n), out=self.indptr[1:])

    @property
    def relations(self) -> pd.DataFrame:
        """The relations frame, :data:`~recsys.graph.build.RELATION_COLUMNS`."""
        if self._relations is not None:
            return self._relations
        assert self._source is not None
        return pd.read_parquet(self._source)

    @classmethod
    def empty(cls, artist_index: pd.Index) -> ArtistGraph:
        """A graph without relations (artifacts built before the graph stage)."""
        return cls(pd.DataFrame(columns=list(RELATION_COLUMNS)).astype({"rank": int}), artist_index)

    def __len__(self) -> int:
        return len(self.dst)

    def neighbours(self, artist_row: int, k: int | None = None) -> tuple[np.ndarray, ...]:
        """Similar artists of one artist, best first.

        Returns
        -------
        rows : ndarray, shape (m,)
            Artist rows.
        scores : ndarray, shape (m,)
        provenance : ndarray, shape (m,)
            Codes into :data:`~recsys.graph.build.PROVENANCES`.
        """
        lo, hi = self.indptr[artist_row], self.indptr[artist_row + 1]
        if k is not None:
            hi = min(hi, lo + k)
        return self.dst[lo:hi], self.score[lo:hi], self.provenance[lo:hi]

    def is_editorial(self, codes: np.ndarray) -> np.ndarray:
        """Boolean mask: editorial or reviewed provenance (the editorial tier)."""
        return codes != PROVENANCES.index(LEARNED)


def write_graph(directory: Path, relations: pd.DataFrame, artists: pd.DataFrame) -> None:
    """Write the graph files into ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    relations.to_parquet(directory / "relations.parquet", index=False)
    artists.to_parquet(directory / "artists.parquet", index=False)


def read_graph(artifact_path: Path, artist_index: pd.Index) -> ArtistGraph:
    """The artifact's graph, or an empty one for artifacts that predate it."""
    path = Path(artifact_path) / GRAPH_DIR / "relations.parquet"
    if not path.exists():
        logger.warning("%s has no similar-artist graph; serving without one", artifact_path)
        return ArtistGraph.empty(artist_index)
    return ArtistGraph(pd.read_parquet(path), artist_index, source=path)


__all__ = [
    "EDITORIAL",
    "GRAPH_DIR",
    "LEARNED",
    "REVIEWED",
    "ArtistGraph",
    "read_graph",
    "write_graph",
]
