"""Small hand-made contract directories for tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def minimal_tables() -> dict[str, pd.DataFrame]:
    """A valid, tiny platform: 2 labels, 3 artists, 5 tracks, 3 users, some streams."""
    ts = pd.Timestamp("2026-10-01T10:00:00Z")
    return {
        "labels": pd.DataFrame(
            {"label_id": ["l1", "l2"], "name": ["Good", "Farm"], "status": ["verified", "blocked"]}
        ),
        "artists": pd.DataFrame(
            {
                "artist_id": ["a1", "a2", "a3"],
                "name": ["One", "Two", "Farm"],
                "label_id": ["l1", "l1", "l2"],
                "verified": [True, True, False],
            }
        ),
        "tracks": pd.DataFrame(
            {
                "track_id": ["t1", "t2", "t3", "t4", "t5"],
                "artist_id": ["a1", "a1", "a2", "a2", "a3"],
                "title": ["T1", "T2", "T3", "T4", "T5"],
                "release_date": pd.to_datetime(["2024-01-01"] * 5).date,
                "duration_ms": [200_000] * 5,
                "ai_disclosure": ["none", "none", "none", "assisted", "generated"],
                "ai_score": [0.1, None, 0.2, 0.3, 0.99],
                "status": ["active"] * 5,
            }
        ),
        "users": pd.DataFrame(
            {
                "user_id": ["u1", "u2", "u3"],
                "personalization_consent": [True, True, False],
                "created_at": [ts] * 3,
            }
        ),
        "streams": pd.DataFrame(
            {
                "user_id": ["u1", "u1", "u2", "u2", "u3", "u1"],
                "track_id": ["t1", "t3", "t1", "t2", "t1", "t5"],
                "ts": [ts + pd.Timedelta(minutes=5 * i) for i in range(6)],
                "ms_played": [200_000, 150_000, 200_000, 10_000, 200_000, 200_000],
            }
        ),
        "editorial_seeds": pd.DataFrame(
            {
                "artist_id": ["a1"],
                "similar_artist_id": ["a2"],
                "editor": ["ed"],
                "created_at": [ts],
            }
        ),
    }


def write_tables(directory: Path, tables: dict[str, pd.DataFrame], fmt: str = "parquet") -> Path:
    """Write frames as a contract directory (``parquet`` or ``csv``)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(directory / f"{name}.csv", index=False)
        else:
            frame.to_parquet(directory / f"{name}.parquet", index=False)
    return directory
