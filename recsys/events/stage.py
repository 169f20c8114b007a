"""The event stage: from validated events to a user x track interaction matrix.

Kept apart from the model stage on purpose: everything here is a filter and a
group-by over (user, track) pairs, which a distributed engine can replace
without touching the model. The contract's training rule is applied here:
only streams of consenting users, at least 30 s long, not fraudulent, on
trusted-pool tracks, of users who were not erased.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.contract.load import ContractData
from recsys.contract.schema import MIN_STREAM_MS

logger = logging.getLogger(__name__)

#: Why an event does not train a model, in the order they are attributed.
DROP_REASONS = ("short_play", "no_consent", "erased_user", "not_in_pool", "fraud")


class EventFilter(Protocol):
    """Hook for fraud detection (and any later event-level defence).

    Called with the validated contract and its event table (all rows, short
    plays included, since loops of 31 s plays are a fraud signal). Returns a
    boolean mask over the event rows: ``True`` drops the row as fraudulent.
    """

    name: str

    def __call__(self, data: ContractData, events: pd.DataFrame) -> np.ndarray: ...


@dataclass(frozen=True)
class EventRules:
    """Settings of the event stage.

    Parameters
    ----------
    min_ms_played
        Shortest play that counts as a stream (contract: 30 000 ms).
    max_plays_per_pair
        Cap on one user's count for one track before weighting; bounds how
        far a single account can move a track. ``None``: no cap.
    detect_fraud
        Run fraud detection (:mod:`recsys.fraud`) and drop flagged streams
        and accounts before aggregation.
    """

    min_ms_played: int = MIN_STREAM_MS
    max_plays_per_pair: int | None = None
    detect_fraud: bool = True


@dataclass
class EventReport:
    """Counts of events in, dropped per reason, and kept."""

    table: str
    input: int
    dropped: dict[str, int]
    kept: int
    filters: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "input": self.input,
            "dropped": self.dropped,
            "kept": self.kept,
            "filters": list(self.filters),
        }


def select_training_events(
    data: ContractData,
    pool_eligible: np.ndarray,
    *,
    rules: EventRules | None = None,
    erased_users: np.ndarray | None = None,
    filters: tuple[EventFilter, ...] = (),
) -> tuple[pd.DataFrame, EventReport]:
    """Keep the events that may train a model.

    Parameters
    ----------
    data
        Validated contract.
    pool_eligible
        Boolean mask, shape (n_tracks,): trusted-pool tracks.
    rules
        Event-stage settings.
    erased_users
        Boolean mask, shape (n_users,): users erased on request.
    filters
        Event filters (fraud detection); each returns rows to drop.

    Returns
    -------
    events
        The kept rows of the event table (``user_idx``, ``track_idx``, ...).
    report
        Counts per drop reason; each dropped row is counted once, under the
        first reason in :data:`DROP_REASONS` that applies.
    """
    rules = rules or EventRules()
    ev = data.events
    n = len(ev)
    u = ev["user_idx"].to_numpy()
    t = ev["track_idx"].to_numpy()
    consent = data.users["personalization_consent"].to_numpy(dtype=bool)

    masks: dict[str, np.ndarray] = {}
    if data.event_table == "streams":
        masks["short_play"] = ev["ms_played"].to_numpy() < rules.min_ms_played
    masks["no_consent"] = ~consent[u]
    if erased_users is not None and erased_users.any():
        masks["erased_user"] = erased_users[u]
    masks["not_in_pool"] = ~pool_eligible[t]
    fraud = np.zeros(n, dtype=bool)
    for f in filters:
        fraud |= np.asarray(f(data, ev), dtype=bool)
    masks["fraud"] = fraud

    drop = np.zeros(n, dtype=bool)
    dropped: dict[str, int] = {}
    for reason in DROP_REASONS:
        m = masks.get(reason)
        if m is None:
            continue
        new = m & ~drop
        dropped[reason] = int(new.sum())
        drop |= new
    kept = ev.loc[~drop].reset_index(drop=True)
    report = EventReport(
        table=data.event_table,
        input=n,
        dropped=dropped,
        kept=len(kept),
        filters=tuple(f.name for f in filters),
    )
    logger.info(
        "event stage: kept %d of %d %s (dropped %s)", len(kept), n, data.event_table, dropped
    )
    return kept, report


@dataclass
class Interactions:
    """User x item interaction counts over the model's own rows.

    Attributes
    ----------
    matrix
        CSR, shape (n_model_users, n_model_items), float32: number of streams
        (or summed ``plays``) per pair, after the per-pair cap.
    user_idx
        Contract user row of each model user, shape (n_model_users,).
    track_idx
        Contract track row of each model item, shape (n_model_items,).
    """

    matrix: sp.csr_matrix
    user_idx: np.ndarray
    track_idx: np.ndarray


def aggregate(
    events: pd.DataFrame, *, n_users: int, n_tracks: int, rules: EventRules | None = None
) -> Interactions:
    """Group kept events by (user, track) and compact to the rows that have data.

    Parameters
    ----------
    events
        Output of :func:`select_training_events`.
    n_users, n_tracks
        Sizes of the contract's ``users`` and ``tracks`` tables.

    Returns
    -------
    Interactions
        Only users and tracks with at least one kept event get a row; a track
        nobody streamed has no collaborative signal to learn from.
    """
    rules = rules or EventRules()
    u = events["user_idx"].to_numpy().astype(np.int64)
    t = events["track_idx"].to_numpy().astype(np.int64)
    key = u * n_tracks + t
    if "plays" in events:
        weights = events["plays"].to_numpy().astype(np.float64)
        order = np.argsort(key, kind="stable")
        key_sorted = key[order]
        uniq, start = np.unique(key_sorted, return_index=True)
        counts = np.add.reduceat(weights[order], start) if len(start) else np.zeros(0)
    else:
        uniq, counts = np.unique(key, return_counts=True)
        counts = counts.astype(np.float64)
    if rules.max_plays_per_pair is not None:
        counts = np.minimum(counts, rules.max_plays_per_pair)
    pu = uniq // n_tracks
    pt = uniq % n_tracks
    user_idx, rows = np.unique(pu, return_inverse=True)
    track_idx, cols = np.unique(pt, return_inverse=True)
    # `uniq` is sorted by (user, track), so rows are grouped and columns sorted
    # within a row: the CSR arrays can be built directly.
    indptr = np.zeros(len(user_idx) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(user_idx)), out=indptr[1:])
    matrix = sp.csr_matrix(
        (counts.astype(np.float32), cols.astype(np.int32), indptr),
        shape=(len(user_idx), len(track_idx)),
    )
    logger.info(
        "aggregated %d events into %d pairs (%d users x %d tracks)",
        len(events),
        matrix.nnz,
        matrix.shape[0],
        matrix.shape[1],
    )
    return Interactions(matrix, user_idx.astype(np.int64), track_idx.astype(np.int64))
