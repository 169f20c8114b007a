"""Account-level features and rules.

Profile features come from the account x track count matrix, so they exist
for ``streams`` (counting streams of at least 30 s) and for aggregated
``plays`` alike; time features come from :mod:`recsys.fraud.streams`.

Every rule is a conjunction of conditions ``value >= threshold`` (or ``<=``).
Its *ratio* is the smallest of ``value / threshold`` (or ``threshold /
value``) over its conditions, so the rule fires exactly when the ratio is at
least 1; the rule's *severity* is ``ratio / (1 + ratio)``: 0.5 at the
threshold, approaching 1 far beyond it. An account's score is the highest
severity over the rules that ran (below 0.5 for an account no rule flagged).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.fraud.campaigns import CampaignGroups
from recsys.fraud.farms import FarmGroups
from recsys.fraud.settings import FraudSettings
from recsys.fraud.streams import NS_PER_DAY, StreamFeatures

logger = logging.getLogger(__name__)


def count_matrix(
    user: np.ndarray, track: np.ndarray, weight: np.ndarray | None, n_users: int, n_tracks: int
) -> sp.csr_matrix:
    """Account x track counts, CSR float64, shape (n_users, n_tracks), duplicates summed."""
    w = np.ones(len(user), np.float64) if weight is None else weight.astype(np.float64)
    m = sp.csr_matrix((w, (user, track)), shape=(n_users, n_tracks))
    m.sum_duplicates()
    return m


def _row_max(m: sp.csr_matrix) -> np.ndarray:
    """Largest stored value of every row (0 for empty rows), shape (n_rows,)."""
    out = np.zeros(m.shape[0], np.float64)
    nonempty = np.flatnonzero(np.diff(m.indptr))
    if len(nonempty):
        out[nonempty] = np.maximum.reduceat(m.data, m.indptr[nonempty])
    return out


def _row_argmax(m: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """Column of the largest value of each of ``rows`` (non-empty), shape (len(rows),)."""
    sub = m[rows]
    row_of = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
    order = np.lexsort((-sub.data, row_of))
    return sub.indices[order[sub.indptr[:-1]]].astype(np.int64)


def _row_top_k_sum(m: sp.csr_matrix, rows: np.ndarray, k: int) -> np.ndarray:
    """Sum of the ``k`` largest values of each of ``rows``, shape (len(rows),)."""
    sub = m[rows]
    if sub.nnz == 0:
        return np.zeros(len(rows))
    row_of = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
    order = np.lexsort((-sub.data, row_of))
    rank = np.arange(sub.nnz) - sub.indptr[row_of[order]]
    top = rank < k
    return np.bincount(row_of[order][top], weights=sub.data[order][top], minlength=len(rows))


def profile_features(
    counts: sp.csr_matrix, track_artist: np.ndarray, settings: FraudSettings
) -> pd.DataFrame:
    """Features computable from account x track counts.

    Parameters
    ----------
    counts
        CSR, shape (n_users, n_tracks): streams (or plays) per account and track.
    track_artist
        Artist code of every track, shape (n_tracks,), values in ``0..n_artists-1``.
    settings
        ``loop_top_tracks`` and ``obscure_max_listeners`` are used here.

    Returns
    -------
    pd.DataFrame
        One row per account (n_users rows): ``streams``, ``tracks``,
        ``top_track_streams``, ``top_tracks_share``, ``top_artist_streams``,
        ``top_artist_share``, ``obscure_streams``, ``obscure_share``,
        ``obscure_repeats`` (streams per obscure track), ``diversity`` (distinct
        tracks / streams; 1.0 for accounts without streams),
        ``top_track_play_share`` (the account's streams of its top track over
        all accounts' streams of that track; computed only where the top
        track reaches ``loop_min_streams``, 0 elsewhere).
    """
    s = settings
    n_users, n_tracks = counts.shape
    streams = np.asarray(counts.sum(axis=1)).ravel()
    tracks = np.diff(counts.indptr).astype(np.int64)
    top_track = _row_max(counts)
    safe = np.maximum(streams, 1.0)

    # Top-k share is only needed where the loop rule can fire at all: the top
    # track alone must reach loop_min_streams. Sorting just those rows is cheap.
    top_k = top_track.copy()
    need = np.flatnonzero(top_track >= s.loop_min_streams)
    if len(need) and s.loop_top_tracks > 1:
        top_k[need] = _row_top_k_sum(counts, need, s.loop_top_tracks)
    # How much of its top track's plays the account makes (a loop bot makes
    # most of them; a fan of a popular artist a sliver).
    track_total = np.asarray(counts.sum(axis=0)).ravel()
    top_track_play_share = np.zeros(n_users)
    if len(need):
        top_track_play_share[need] = top_track[need] / np.maximum(
            track_total[_row_argmax(counts, need)], 1.0
        )

    n_artists = int(track_artist.max()) + 1 if len(track_artist) else 1
    to_artist = sp.csr_matrix(
        (np.ones(n_tracks, np.float64), (np.arange(n_tracks), track_artist)),
        shape=(n_tracks, n_artists),
    )
    by_artist = (counts @ to_artist).tocsr()
    top_artist = _row_max(by_artist)

    listeners = np.bincount(counts.indices, minlength=n_tracks)
    obscure_nnz = listeners[counts.indices] <= s.obscure_max_listeners
    row_of = np.repeat(np.arange(n_users), np.diff(counts.indptr))
    obscure = np.bincount(row_of[obscure_nnz], weights=counts.data[obscure_nnz], minlength=n_users)
    obscure_tracks = np.bincount(row_of[obscure_nnz], minlength=n_users)

    return pd.DataFrame(
        {
            "streams": streams.astype(np.int64),
            "tracks": tracks,
            "top_track_streams": top_track,
            "top_tracks_share": top_k / safe,
            "top_artist_streams": top_artist,
            "top_artist_share": top_artist / safe,
            "obscure_streams": obscure,
            "obscure_share": obscure / safe,
            "obscure_repeats": obscure / np.maximum(obscure_tracks, 1),
            "diversity": np.where(streams > 0, tracks / safe, 1.0),
            "top_track_play_share": top_track_play_share,
        }
    )


def add_time_features(
    features: pd.DataFrame, sf: StreamFeatures, created_ns: np.ndarray
) -> pd.DataFrame:
    """Add the time-based columns to :func:`profile_features`' frame (in place).

    Parameters
    ----------
    features
        Profile features, n_users rows.
    sf
        Stream features.
    created_ns
        Account creation time, ns since epoch, shape (n_users,); int64 min where unknown.

    Returns
    -------
    pd.DataFrame
        The same frame with ``overlap_streams``, ``overlap_share``,
        ``burst_streams``, ``burst_share``, ``threshold_streams``,
        ``threshold_share``, ``max_24h_streams``, ``active_days``,
        ``streams_per_day`` and ``age_at_first_stream_days`` (NaN when unknown).
    """
    safe = np.maximum(sf.n_streams, 1)
    features["overlap_streams"] = sf.overlap_streams
    features["overlap_share"] = sf.overlap_streams / safe
    features["burst_streams"] = sf.burst_streams
    features["burst_share"] = sf.burst_streams / safe
    features["threshold_streams"] = sf.threshold_streams
    features["threshold_share"] = sf.threshold_streams / safe
    features["max_24h_streams"] = sf.max_24h_streams
    features["active_days"] = sf.active_days
    features["streams_per_day"] = sf.n_streams / np.maximum(sf.active_days, 1)
    known = (created_ns != np.iinfo(np.int64).min) & (sf.n_streams > 0)
    age = np.full(len(safe), np.nan)
    age[known] = (sf.first_stream_ns[known] - created_ns[known]) / NS_PER_DAY
    features["age_at_first_stream_days"] = age
    return features


@dataclass(frozen=True)
class Condition:
    """``feature >= threshold`` (``at_least``) or ``feature <= threshold``."""

    feature: str
    threshold: float
    at_least: bool = True


def rule_conditions(
    settings: FraudSettings, has_time: bool = True
) -> dict[str, tuple[Condition, ...]]:
    """The conditions of every account rule but ``farm`` (which is a grouping).

    Parameters
    ----------
    settings
        Thresholds.
    has_time
        ``True`` for ``streams``: ``loop`` then looks at one day's repetition;
        ``False`` for ``plays``: ``loop`` looks at repetition by counts, and
        needs more evidence (few tracks in all, most of the top track's plays).
    """
    s = settings
    loop = (
        (Condition("max_track_24h_streams", s.loop_daily_streams),)
        if has_time
        else (
            Condition("top_tracks_share", s.loop_min_share),
            Condition("top_track_streams", s.loop_min_streams),
            Condition("tracks", s.loop_max_tracks, at_least=False),
            Condition("top_track_play_share", s.loop_min_track_share),
        )
    )
    return {
        "loop": loop,
        "overlap": (
            Condition("overlap_share", s.overlap_min_share),
            Condition("overlap_streams", s.overlap_min_streams),
        ),
        "burst": (
            Condition("burst_share", s.burst_min_share),
            Condition("burst_streams", s.burst_min_streams),
        ),
        "threshold": (
            Condition("threshold_share", s.threshold_min_share),
            Condition("threshold_streams", s.threshold_min_streams),
        ),
        "volume": (Condition("max_24h_streams", s.volume_daily_streams),),
        "new_account": (
            Condition("age_at_first_stream_days", s.new_account_days, at_least=False),
            Condition("streams_per_day", s.new_account_daily_streams),
            Condition("streams", s.new_account_min_streams),
        ),
        "concentration": (
            Condition("top_artist_share", s.concentration_min_share),
            Condition("top_artist_streams", s.concentration_min_streams),
        ),
        "obscure": (
            Condition("obscure_share", s.obscure_min_share),
            Condition("obscure_streams", s.obscure_min_streams),
            Condition("obscure_repeats", s.obscure_min_repeats),
        ),
        "low_diversity": (
            Condition("diversity", s.low_diversity_max_ratio, at_least=False),
            Condition("streams", s.low_diversity_min_streams),
        ),
    }


def _ratio(value: np.ndarray, c: Condition) -> np.ndarray:
    """How far past its threshold a condition is: >= 1 exactly when it holds."""
    v = np.asarray(value, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if c.at_least:
            r = v / c.threshold if c.threshold > 0 else np.where(v >= c.threshold, np.inf, 0.0)
            held = v >= c.threshold
        else:
            # A value at or below 0 is as far past a "<=" threshold as it gets.
            r = np.where(v > 0, c.threshold / v, np.inf)
            held = v <= c.threshold
    r = np.where(np.isnan(v), 0.0, r)  # unknown (e.g. no creation date): never holds
    # Guard the rounding at the boundary so that ratio >= 1 <=> the condition holds.
    return np.where(held & ~np.isnan(v), np.maximum(r, 1.0), np.minimum(r, np.nextafter(1.0, 0)))


def evaluate_rule(features: pd.DataFrame, conds: tuple[Condition, ...]) -> np.ndarray:
    """Ratio of one rule for every account, shape (n_users,): fires where >= 1."""
    ratio = np.full(len(features), np.inf)
    for c in conds:
        ratio = np.minimum(ratio, _ratio(features[c.feature].to_numpy(), c))
    return ratio


def farm_ratio(farms: FarmGroups, settings: FraudSettings, has_time: bool = True) -> np.ndarray:
    """Ratio of the farm rule, shape (n_users,): >= 1 exactly for farm members.

    How close an account's best compared pair came to being linked: the
    smaller of best track-set Jaccard / ``farm_min_jaccard`` (or
    ``farm_min_jaccard_plays`` without time) and (with time)
    best co-activity / ``farm_min_coactivity``; for a member, also at least
    farm size / ``farm_min_accounts``. Non-members stay below 1 (a linked
    pair in a group too small is a near miss, not a farm).
    """
    s = settings
    r = farms.best_jaccard / (s.farm_min_jaccard if has_time else s.farm_min_jaccard_plays)
    if has_time and s.farm_min_coactivity > 0:
        r = np.minimum(r, farms.best_coactivity / s.farm_min_coactivity)
    member = farms.group >= 0
    r = np.where(member, np.minimum(r, farms.group_size / s.farm_min_accounts), r)
    return np.where(member, np.maximum(r, 1.0), np.minimum(r, np.nextafter(1.0, 0)))


def campaign_ratio(campaigns: CampaignGroups) -> np.ndarray:
    """Ratio of the campaign rule, shape (n_users,): >= 1 exactly for campaign members.

    Non-members keep how close the best core they were in came (below 1).
    """
    member = campaigns.group >= 0
    r = campaigns.ratio
    return np.where(member, np.maximum(r, 1.0), np.minimum(r, np.nextafter(1.0, 0)))


def severity(ratio: np.ndarray) -> np.ndarray:
    """``ratio / (1 + ratio)`` in [0, 1]; 0.5 at the threshold, 1.0 for an infinite ratio."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(ratio), 1.0, ratio / (1.0 + ratio))
