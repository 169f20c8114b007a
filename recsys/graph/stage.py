"""The pipeline's ``graph`` stage: from a training run's state to :class:`GraphInputs`."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from recsys.contract.load import ContractData
from recsys.graph.build import GraphBuild, GraphInputs, build_graph
from recsys.graph.config import GraphConfig
from recsys.graph.review import read_review_log

logger = logging.getLogger(__name__)

#: Columns of the kept training events the graph stage needs.
EVENT_COLUMNS = ("user_idx", "track_idx", "ts", "plays")


def slim_events(events: pd.DataFrame) -> pd.DataFrame:
    """The columns of the kept events that the graph stage reads (the rest can go)."""
    return events[[c for c in EVENT_COLUMNS if c in events.columns]]


def graph_inputs(
    data: ContractData,
    pool_eligible: np.ndarray,
    artist_factors: np.ndarray,
    events: pd.DataFrame,
) -> GraphInputs:
    """Assemble the graph stage's inputs.

    Parameters
    ----------
    data
        The validated contract.
    pool_eligible
        Boolean, shape (n_tracks,): trusted-pool tracks.
    artist_factors
        Shape (n_artists, d).
    events
        The kept training events (after consent, pool and fraud filters),
        at least ``user_idx`` and ``track_idx``.
    """
    artist_index = pd.Index(data.artists["artist_id"].to_numpy(dtype=object))
    track_artist = artist_index.get_indexer(data.tracks["artist_id"].to_numpy(dtype=object))
    pool_artist = (
        np.bincount(track_artist[np.asarray(pool_eligible, bool)], minlength=len(artist_index)) > 0
    )
    ts = None
    if "ts" in events.columns:
        ts = events["ts"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    weight = events["plays"].to_numpy(np.float64) if "plays" in events.columns else None
    reviews = read_review_log(data.data_dir)
    approved = reviews.loc[reviews["decision"] == "approve"] if len(reviews) else reviews
    reviewed = frozenset(
        zip(
            approved.get("artist_id", pd.Series(dtype=str)).astype(str),
            approved.get("similar_artist_id", pd.Series(dtype=str)).astype(str),
            strict=True,
        )
    )
    return GraphInputs(
        artist_ids=artist_index.to_numpy(),
        pool_artist=pool_artist,
        artist_factors=artist_factors,
        event_user=events["user_idx"].to_numpy(np.int64),
        event_artist=track_artist[events["track_idx"].to_numpy(np.int64)].astype(np.int64),
        event_ts_ms=ts,
        event_weight=weight,
        seeds=data.editorial_seeds,
        rejections=data.editorial_rejections,
        reviewed=reviewed,
    )


def run_graph_stage(
    data: ContractData,
    pool_eligible: np.ndarray,
    artist_factors: np.ndarray,
    events: pd.DataFrame,
    config: GraphConfig | None = None,
) -> GraphBuild:
    """Build the graph of one training run (see :func:`recsys.graph.build.build_graph`)."""
    inputs = graph_inputs(data, pool_eligible, artist_factors, events)
    return build_graph(inputs, config)
