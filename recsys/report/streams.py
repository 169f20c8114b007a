"""The stream report royalties are computed from: per track, artist and label.

For a period, every play of at least 30 s is a *counted* stream (shorter
plays are not streams at all). Counted streams that fraud detection flags are
*excluded*, each under exactly one reason; the rest are *royalty-eligible*.
The totals reconcile exactly at every level::

    counted == eligible + excluded == eligible + sum(excluded_<reason>)

Consent and the trusted pool play no part here: they govern recommendation,
not whether a real listener's stream is paid.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.contract.load import ContractData
from recsys.contract.schema import MIN_STREAM_MS

logger = logging.getLogger(__name__)

LEVELS = ("tracks", "artists", "labels")


@dataclass
class StreamReport:
    """Per-level report frames and the period they cover.

    Each frame has the level's id column(s), ``counted``, ``eligible``,
    ``excluded`` and one ``excluded_<reason>`` column per fraud reason.
    """

    tracks: pd.DataFrame
    artists: pd.DataFrame
    labels: pd.DataFrame
    since: str | None
    until: str | None
    reasons: tuple[str, ...]
    rules_run: tuple[str, ...]

    def totals(self) -> dict[str, Any]:
        t = self.tracks
        return {
            "counted": int(t["counted"].sum()),
            "eligible": int(t["eligible"].sum()),
            "excluded": int(t["excluded"].sum()),
            "excluded_by_reason": {
                r: int(t[f"excluded_{r}"].sum()) for r in self.reasons if t[f"excluded_{r}"].sum()
            },
        }

    def write(self, out: str | Path) -> list[Path]:
        """Write ``tracks``, ``artists`` and ``labels`` as Parquet and CSV, plus ``summary.json``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for level in LEVELS:
            frame = getattr(self, level)
            for suffix in ("parquet", "csv"):
                p = out / f"{level}.{suffix}"
                if suffix == "parquet":
                    frame.to_parquet(p, index=False)
                else:
                    frame.to_csv(p, index=False)
                paths.append(p)
        summary = {
            "period": {"since": self.since, "until": self.until},
            "totals": self.totals(),
            "fraud_rules_run": list(self.rules_run),
            "rows": {level: len(getattr(self, level)) for level in LEVELS},
        }
        p = out / "summary.json"
        p.write_text(json.dumps(summary, indent=2))
        paths.append(p)
        return paths


def _safe(reason: str) -> str:
    return reason.replace(":", "_")


def stream_report(
    data: ContractData,
    stream_reason: np.ndarray | None = None,
    reason_names: tuple[str, ...] = (),
    *,
    since: dt.date | None = None,
    until: dt.date | None = None,
    rules_run: tuple[str, ...] = (),
    min_ms_played: int = MIN_STREAM_MS,
) -> StreamReport:
    """Count streams per track, artist and label for a period.

    Parameters
    ----------
    data
        Validated contract (``streams`` or ``plays``).
    stream_reason
        int array, shape (n_events,): 0 for clean rows, else the 1-based index
        of the row's fraud reason in ``reason_names`` (from fraud detection run
        over the whole data, so that context outside the period counts).
    since, until
        Inclusive first and last day (UTC) of the period; ``None``: open.
        Ignored for ``plays``, which has no time.

    Returns
    -------
    StreamReport
    """
    ev = data.events
    n = len(ev)
    reason = np.zeros(n, dtype=np.int64) if stream_reason is None else np.asarray(stream_reason)
    if len(reason) != n:
        raise ValueError("stream_reason must have one entry per event row")
    if data.event_table == "streams":
        weight = np.ones(n, dtype=np.int64)
        keep = ev["ms_played"].to_numpy() >= min_ms_played
        ts = ev["ts"]
        if since is not None:
            keep &= (ts >= pd.Timestamp(since, tz="UTC")).to_numpy()
        if until is not None:
            keep &= (ts < pd.Timestamp(until, tz="UTC") + pd.Timedelta(days=1)).to_numpy()
    else:
        weight = ev["plays"].to_numpy().astype(np.int64)
        keep = np.ones(n, dtype=bool)
        if since is not None or until is not None:
            logger.warning("plays have no timestamps: the period is ignored")

    track_idx = ev["track_idx"].to_numpy()[keep]
    w = weight[keep]
    r = reason[keep]
    n_tracks = len(data.tracks)
    counted = np.bincount(track_idx, weights=w, minlength=n_tracks).astype(np.int64)
    cols: dict[str, np.ndarray] = {}
    excluded = np.zeros(n_tracks, dtype=np.int64)
    for i, name in enumerate(reason_names, start=1):
        m = r == i
        per = np.bincount(track_idx[m], weights=w[m], minlength=n_tracks).astype(np.int64)
        cols[f"excluded_{_safe(name)}"] = per
        excluded += per
    unknown = (r > len(reason_names)).sum()
    if unknown:
        raise ValueError(f"{unknown} rows carry a reason index without a name")

    artists = data.artists.set_index("artist_id")
    tracks = pd.DataFrame(
        {
            "track_id": data.tracks["track_id"].to_numpy(),
            "artist_id": data.tracks["artist_id"].to_numpy(),
            "label_id": artists["label_id"].reindex(data.tracks["artist_id"]).to_numpy(),
            "counted": counted,
            "eligible": counted - excluded,
            "excluded": excluded,
            **cols,
        }
    )
    tracks = tracks.loc[tracks["counted"] > 0].reset_index(drop=True)
    numeric = ["counted", "eligible", "excluded", *cols]
    by_artist = tracks.groupby(["artist_id", "label_id"], as_index=False)[numeric].sum()
    by_label = tracks.groupby("label_id", as_index=False)[numeric].sum()
    report = StreamReport(
        tracks=tracks,
        artists=by_artist,
        labels=by_label,
        since=since.isoformat() if since else None,
        until=until.isoformat() if until else None,
        reasons=tuple(_safe(x) for x in reason_names),
        rules_run=tuple(rules_run),
    )
    logger.info("stream report: %s", report.totals())
    return report
