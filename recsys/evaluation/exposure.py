"""Exposure: who gets heard through the recommendations, compared with who gets streamed.

How the platform shows it gives human artists fair visibility and sells no
placement: the share of recommendations and of streams by label status, by
label size, by artist popularity decile, the long tail's share, and whether
editorial seeds reach listeners.

Definitions (documented here because they are choices):

- *label size* by the label's share of the catalogue's tracks: ``major``
  (>= 5 %), ``independent`` (>= 0.5 %), ``small`` (below);
- *artist popularity decile* by training streams, 1 = least streamed tenth
  of streamed artists, 10 = most streamed; artists with no stream are ``0``;
- *head* tracks: the most-streamed tracks that together take 80 % of the
  streams; everything else is the *long tail*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.artifact.loaded import Artifact

MAJOR_SHARE = 0.05
INDEPENDENT_SHARE = 0.005
HEAD_STREAM_SHARE = 0.8


@dataclass
class ExposureReport:
    """Share tables (``recommendations`` and ``streams`` columns) and headline figures."""

    by_label_status: pd.DataFrame
    by_label_size: pd.DataFrame
    by_popularity_decile: pd.DataFrame
    summary: dict[str, float]

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "label_status": self.by_label_status,
            "label_size": self.by_label_size,
            "popularity_decile": self.by_popularity_decile,
        }


def _shares(groups: pd.Series, rec_counts: np.ndarray, stream_counts: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"group": groups.to_numpy(), "recommendations": rec_counts, "streams": stream_counts}
    )
    out = frame.groupby("group", sort=True)[["recommendations", "streams"]].sum()
    totals = out.sum()
    for col in ("recommendations", "streams"):
        out[col] = out[col] / totals[col] if totals[col] else 0.0
    out["ratio"] = np.where(out["streams"] > 0, out["recommendations"] / out["streams"], np.nan)
    return out.reset_index()


def exposure_report(artifact: Artifact, top: np.ndarray) -> ExposureReport:
    """Exposure of recommended lists against training streams.

    Parameters
    ----------
    artifact
        The artifact the lists came from (catalogue, labels, streams per track).
    top
        Catalogue track rows, shape (n_users, k), padded with -1.

    Returns
    -------
    ExposureReport
    """
    a = artifact
    tracks = a.tracks
    n_tracks = len(tracks)
    items = top[top >= 0]
    rec = np.bincount(items, minlength=n_tracks).astype(np.float64)
    streams = tracks["streams"].to_numpy(dtype=np.float64)

    labels = a.labels.set_index("label_id")
    label_of = tracks["label_id"]
    status = label_of.map(labels["status"]).fillna("unknown")
    per_label = label_of.value_counts(normalize=True)
    size_share = label_of.map(per_label).fillna(0.0).to_numpy()
    size = np.where(
        size_share >= MAJOR_SHARE,
        "major",
        np.where(size_share >= INDEPENDENT_SHARE, "independent", "small"),
    )

    artist_streams = pd.Series(streams).groupby(tracks["artist_id"].to_numpy()).sum()
    streamed = artist_streams[artist_streams > 0]
    deciles = pd.Series(0, index=artist_streams.index)
    if len(streamed):
        ranks = streamed.rank(method="first")
        deciles.loc[streamed.index] = np.ceil(ranks / len(streamed) * 10).astype(int)
    track_decile = tracks["artist_id"].map(deciles).fillna(0).astype(int)

    order = np.argsort(-streams, kind="stable")
    cum = np.cumsum(streams[order])
    total = cum[-1] if len(cum) else 0.0
    head = np.zeros(n_tracks, dtype=bool)
    if total > 0:
        head[order[: int(np.searchsorted(cum, HEAD_STREAM_SHARE * total)) + 1]] = True

    seeded = set(a.editorial_seeds["artist_id"]).union(a.editorial_seeds["similar_artist_id"])
    track_seeded = tracks["artist_id"].isin(seeded).to_numpy()
    users_reached = (
        float(np.mean([track_seeded[row[row >= 0]].any() for row in top])) if len(top) else 0.0
    )
    recommended_artists = set(tracks["artist_id"].to_numpy()[items])
    summary = {
        "recommendations": float(rec.sum()),
        "long_tail_share_recommendations": float(rec[~head].sum() / rec.sum())
        if rec.sum()
        else 0.0,
        "long_tail_share_streams": float(streams[~head].sum() / total) if total else 0.0,
        "seeded_artist_share_recommendations": float(rec[track_seeded].sum() / rec.sum())
        if rec.sum()
        else 0.0,
        "seeded_artist_share_streams": float(streams[track_seeded].sum() / total) if total else 0.0,
        "users_reached_by_seeded_artists": users_reached,
        "seeded_artists_recommended": float(len(seeded & recommended_artists) / len(seeded))
        if seeded
        else 0.0,
        "pool_compliance": float(tracks["in_pool"].to_numpy()[items].mean()) if len(items) else 1.0,
    }
    return ExposureReport(
        by_label_status=_shares(status, rec, streams),
        by_label_size=_shares(pd.Series(size), rec, streams),
        by_popularity_decile=_shares(track_decile, rec, streams),
        summary=summary,
    )
