"""The trusted pool: which tracks an algorithmic surface may recommend.

The rule is the contract's (``shared/spec/data-contract.md``, "The trusted
pool"). Every excluded track gets every reason that applies to it, so the
published counts answer both "how many tracks were excluded" and "how many
for each reason".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

#: Exclusion reasons, in the order they are checked and reported.
REASONS = (
    "track_taken_down",  # tracks.status == taken_down
    "ai_generated_declared",  # ai_disclosure == generated
    "ai_score_high",  # detector's ai_score >= threshold
    "artist_unverified",  # artists.verified is false
    "label_untrusted",  # label status not verified / trusted_partner
    "artist_opted_out",  # the artist opted out of algorithmic recommendation
    "label_opted_out",  # the label opted out
    "takedown_track",  # serve-time takedown of the track (state store)
    "takedown_artist",  # serve-time takedown of the artist
    "takedown_label",  # serve-time takedown of the label
)


@dataclass(frozen=True)
class PoolRules:
    """Thresholds of the trusted-pool rule.

    Parameters
    ----------
    ai_score_threshold
        A track whose ``ai_score`` is at or above this is excluded (contract: 0.5).
    trusted_label_statuses
        Label statuses whose tracks may be recommended.
    excluded_ai_disclosures
        Declared AI disclosures that exclude a track.
    require_verified_artist
        Exclude tracks of artists the platform has not verified.
    """

    ai_score_threshold: float = 0.5
    trusted_label_statuses: tuple[str, ...] = ("verified", "trusted_partner")
    excluded_ai_disclosures: tuple[str, ...] = ("generated",)
    require_verified_artist: bool = True


@dataclass(frozen=True)
class Takedowns:
    """Entities taken down at serve time (kept in the state store)."""

    track_ids: frozenset[str] = field(default_factory=frozenset)
    artist_ids: frozenset[str] = field(default_factory=frozenset)
    label_ids: frozenset[str] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.track_ids or self.artist_ids or self.label_ids)


@dataclass
class Pool:
    """The trusted pool over a catalogue of tracks.

    Attributes
    ----------
    track_ids
        Catalogue track ids, shape (n_tracks,), in catalogue order.
    eligible
        Boolean mask, shape (n_tracks,): the track may be recommended.
    reasons
        Boolean matrix, shape (n_tracks, len(REASONS)): which reasons apply.
    """

    track_ids: np.ndarray
    eligible: np.ndarray
    reasons: np.ndarray

    @property
    def size(self) -> int:
        return int(self.eligible.sum())

    def counts(self) -> dict[str, int]:
        """Tracks excluded per reason (a track may count under several)."""
        per = self.reasons.sum(axis=0)
        return {r: int(c) for r, c in zip(REASONS, per, strict=True) if c}

    def summary(self) -> dict[str, object]:
        return {
            "tracks": int(len(self.track_ids)),
            "eligible": self.size,
            "excluded": int((~self.eligible).sum()),
            "excluded_by_reason": self.counts(),
        }

    def exclusions(self) -> pd.DataFrame:
        """One row per excluded track: ``track_id`` and ``reasons`` (``;``-joined)."""
        rows = np.flatnonzero(~self.eligible)
        names = np.asarray(REASONS, dtype=object)
        reasons = [";".join(names[self.reasons[r]]) for r in rows]
        return pd.DataFrame({"track_id": self.track_ids[rows], "reasons": reasons})


def build_pool(
    tracks: pd.DataFrame,
    artists: pd.DataFrame,
    labels: pd.DataFrame,
    opt_outs: pd.DataFrame | None = None,
    *,
    rules: PoolRules | None = None,
    takedowns: Takedowns | None = None,
) -> Pool:
    """Apply the trusted-pool rule to a catalogue.

    Parameters
    ----------
    tracks, artists, labels
        Contract frames. A track whose artist (or label) is unknown is
        excluded as unverified / untrusted: the pool only admits what the
        platform can vouch for.
    opt_outs
        ``entity_type`` / ``entity_id`` frame (may be empty or ``None``).
    rules
        Thresholds; defaults are the contract's.
    takedowns
        Serve-time takedowns from the state store.

    Returns
    -------
    Pool
        Eligibility and reasons for every row of ``tracks``, in order.
    """
    rules = rules or PoolRules()
    takedowns = takedowns or Takedowns()
    n = len(tracks)
    artist_info = artists.set_index("artist_id")[["label_id", "verified"]]
    label_status = labels.set_index("label_id")["status"]

    artist_ids = tracks["artist_id"].to_numpy()
    label_ids = artist_info["label_id"].reindex(artist_ids).to_numpy()
    verified = artist_info["verified"].reindex(artist_ids).fillna(False).to_numpy(dtype=bool)
    status = label_status.reindex(label_ids).to_numpy()

    opt = opt_outs if opt_outs is not None else pd.DataFrame(columns=["entity_type", "entity_id"])
    opted_artists = set(opt.loc[opt["entity_type"] == "artist", "entity_id"])
    opted_labels = set(opt.loc[opt["entity_type"] == "label", "entity_id"])

    ai_score = tracks["ai_score"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        score_high = ~np.isnan(ai_score) & (ai_score >= rules.ai_score_threshold)

    def member(values: np.ndarray, ids: Iterable[str]) -> np.ndarray:
        ids = list(ids)
        return pd.Series(values).isin(ids).to_numpy() if ids else np.zeros(n, dtype=bool)

    columns = {
        "track_taken_down": tracks["status"].to_numpy() == "taken_down",
        "ai_generated_declared": tracks["ai_disclosure"]
        .isin(rules.excluded_ai_disclosures)
        .to_numpy(),
        "ai_score_high": score_high,
        "artist_unverified": ~verified if rules.require_verified_artist else np.zeros(n, bool),
        "label_untrusted": ~pd.Series(status).isin(rules.trusted_label_statuses).to_numpy(),
        "artist_opted_out": member(artist_ids, opted_artists),
        "label_opted_out": member(label_ids, opted_labels),
        "takedown_track": member(tracks["track_id"].to_numpy(), takedowns.track_ids),
        "takedown_artist": member(artist_ids, takedowns.artist_ids),
        "takedown_label": member(label_ids, takedowns.label_ids),
    }
    reasons = (
        np.column_stack([np.asarray(columns[r], dtype=bool) for r in REASONS])
        if n
        else (np.zeros((0, len(REASONS)), dtype=bool))
    )
    pool = Pool(
        track_ids=tracks["track_id"].to_numpy(dtype=object),
        eligible=~reasons.any(axis=1),
        reasons=reasons,
    )
    logger.info("trusted pool: %d of %d tracks eligible", pool.size, n)
    return pool
