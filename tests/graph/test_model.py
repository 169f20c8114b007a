"""The served graph: ranked neighbours from the relations, the frame re-read on demand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.graph.build import EDITORIAL, LEARNED, PROVENANCES
from recsys.graph.model import ArtistGraph, read_graph, write_graph


def _relations() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "artist_id": ["a", "a", "b", "c"],
            "similar_artist_id": ["c", "b", "a", "zz"],  # "zz" is not an artist of the artifact
            "rank": [2, 1, 1, 1],
            "score": [0.5, 0.9, 0.7, 0.3],
            "provenance": [LEARNED, EDITORIAL, EDITORIAL, LEARNED],
            "learned_score": [0.5, np.nan, np.nan, 0.3],
            "vector_similarity": [0.1, 0.2, 0.3, 0.4],
            "shared_listeners": [1, 2, 3, 4],
            "walk_score": [0.0, 0.0, 0.0, 0.0],
            "seed_distance": [1, 0, 0, 2],
        }
    )


def test_neighbours_best_first_with_provenance_and_unknown_dropped() -> None:
    g = ArtistGraph(_relations(), pd.Index(["a", "b", "c"]))
    rows, scores, prov = g.neighbours(0)
    assert rows.tolist() == [1, 2]  # b (rank 1) before c (rank 2)
    assert scores.tolist() == [0.9, 0.5]
    assert [PROVENANCES[p] for p in prov] == [EDITORIAL, LEARNED]
    assert g.neighbours(2)[0].size == 0  # its only relation names an unknown artist
    assert len(g) == 3
    assert g.relations is not None and len(g.relations) == 4  # kept: no source file


def test_graph_read_from_an_artifact_does_not_hold_the_frame(tmp_path) -> None:
    write_graph(tmp_path / "graph", _relations(), pd.DataFrame({"artist_id": ["a", "b", "c"]}))
    g = read_graph(tmp_path, pd.Index(["a", "b", "c"]))
    assert g._relations is None  # only the arrays stay in memory
    assert g.neighbours(0)[0].tolist() == [1, 2]
    pd.testing.assert_frame_equal(g.relations, _relations())  # re-read from the file
