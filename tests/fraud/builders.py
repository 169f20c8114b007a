"""Hand-made platforms for the fraud tests.

:class:`Platform` collects users and plays with readable ids, then either
writes a contract directory and loads it (``load``), or builds the validated
:class:`ContractData` directly (``contract``: in memory, fast enough for
hypothesis to run many examples).
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.contract.load import ContractData, Quarantine, load_contract
from tests.helpers import minimal_tables, write_tables

T0 = pd.Timestamp("2026-09-01T00:00:00Z")
DURATION_MS = 200_000


@functools.cache
def _base_contract() -> ContractData:
    """A loaded minimal contract whose frames :meth:`Platform.contract` replaces.

    Going through the loader once (rather than calling the ContractData
    constructor) keeps the builder valid when the contract gains a field.
    """
    with tempfile.TemporaryDirectory(prefix="fraud_base_") as tmp:
        return load_contract(write_tables(Path(tmp), minimal_tables()))


def catalogue(
    n_tracks: int, n_artists: int, duration_ms: int = DURATION_MS
) -> dict[str, pd.DataFrame]:
    """Labels, artists and tracks: track ``t{i}`` by artist ``a{i % n_artists}``."""
    tracks = pd.DataFrame(
        {
            "track_id": [f"t{i}" for i in range(n_tracks)],
            "artist_id": [f"a{i % n_artists}" for i in range(n_tracks)],
            "title": [f"T{i}" for i in range(n_tracks)],
            "release_date": pd.to_datetime(["2020-01-01"] * n_tracks).date,
            "duration_ms": np.full(n_tracks, duration_ms, np.int64),
            "ai_disclosure": ["none"] * n_tracks,
            "ai_score": [None] * n_tracks,
            "status": ["active"] * n_tracks,
        }
    )
    return {
        "labels": pd.DataFrame({"label_id": ["l1"], "name": ["L"], "status": ["verified"]}),
        "artists": pd.DataFrame(
            {
                "artist_id": [f"a{i}" for i in range(n_artists)],
                "name": [f"A{i}" for i in range(n_artists)],
                "label_id": ["l1"] * n_artists,
                "verified": [True] * n_artists,
            }
        ),
        "tracks": tracks,
        "editorial_seeds": pd.DataFrame(
            {"artist_id": ["a0"], "similar_artist_id": ["a1"], "editor": ["ed"], "created_at": [T0]}
        ),
    }


@dataclass
class Platform:
    """Users and their plays; times in ms after :data:`T0`."""

    n_tracks: int = 200
    n_artists: int = 40
    duration_ms: int = DURATION_MS
    users: list[tuple[str, pd.Timestamp]] = field(default_factory=list)
    rows: list[pd.DataFrame] = field(default_factory=list)

    def add_user(self, user_id: str, created: pd.Timestamp | None = None) -> None:
        self.users.append(
            (user_id, created if created is not None else pd.Timestamp("2020-01-01T00:00Z"))
        )

    def play(self, user_id: str, tracks, t_ms, ms_played) -> None:
        """Add plays: track indices, start times (ms after T0) and durations played."""
        tracks = np.atleast_1d(np.asarray(tracks, np.int64))
        t_ms = np.broadcast_to(np.asarray(t_ms, np.int64), tracks.shape)
        ms = np.broadcast_to(np.asarray(ms_played, np.int64), tracks.shape)
        self.rows.append(
            pd.DataFrame(
                {"user_id": user_id, "track": tracks, "t_ms": t_ms.copy(), "ms_played": ms.copy()}
            )
        )

    def back_to_back(
        self, user_id: str, tracks, start_ms: int, ms_played, gap_ms: int = 1_000
    ) -> np.ndarray:
        """Plays one after the other (each starts ``gap_ms`` after the previous ends); their start times."""
        tracks = np.atleast_1d(np.asarray(tracks, np.int64))
        ms = np.broadcast_to(np.asarray(ms_played, np.int64), tracks.shape)
        starts = start_ms + np.r_[0, np.cumsum(ms[:-1] + gap_ms)]
        self.play(user_id, tracks, starts, ms)
        return starts

    def plays_frame(self) -> pd.DataFrame:
        """All plays in time order (as a platform would log them)."""
        frame = pd.concat(self.rows, ignore_index=True)
        return frame.sort_values("t_ms", kind="stable").reset_index(drop=True)

    def tables(self) -> dict[str, pd.DataFrame]:
        out = catalogue(self.n_tracks, self.n_artists, self.duration_ms)
        out["users"] = pd.DataFrame(
            {
                "user_id": [u for u, _ in self.users],
                "personalization_consent": [True] * len(self.users),
                "created_at": pd.to_datetime([c for _, c in self.users], utc=True),
            }
        )
        plays = self.plays_frame()
        out["streams"] = pd.DataFrame(
            {
                "user_id": plays["user_id"],
                "track_id": "t" + plays["track"].astype(str),
                "ts": T0 + pd.to_timedelta(plays["t_ms"], unit="ms"),
                "ms_played": plays["ms_played"],
            }
        )
        return out

    def load(self, directory: Path) -> ContractData:
        """Write the platform as Parquet files and load it through the contract loader."""
        return load_contract(write_tables(directory, self.tables()))

    def load_plays(self, directory: Path, min_ms: int = 30_000) -> ContractData:
        """Same platform with aggregated ``plays`` (streams of at least ``min_ms``) instead of ``streams``."""
        tables = self.tables()
        s = tables.pop("streams")
        s = s[s["ms_played"] >= min_ms]
        tables["plays"] = s.groupby(["user_id", "track_id"]).size().rename("plays").reset_index()
        return load_contract(write_tables(directory, tables))

    def contract(self) -> ContractData:
        """The validated contract built in memory (what :func:`load_contract` would return)."""
        tables = self.tables()
        users = tables["users"].astype({"created_at": "datetime64[ns, UTC]"})
        tracks = tables["tracks"].assign(
            release_date=pd.to_datetime(tables["tracks"]["release_date"])
        )
        plays = self.plays_frame()
        user_pos = {u: i for i, (u, _) in enumerate(self.users)}
        streams = pd.DataFrame(
            {
                "user_idx": plays["user_id"].map(user_pos).to_numpy().astype(np.int32),
                "track_idx": plays["track"].to_numpy().astype(np.int32),
                "ts": (T0 + pd.to_timedelta(plays["t_ms"], unit="ms"))
                .astype("datetime64[ns, UTC]")
                .array,
                "ms_played": plays["ms_played"].to_numpy().astype(np.int64),
            }
        )
        return dataclasses.replace(
            _base_contract(),
            data_dir=Path("."),
            labels=tables["labels"],
            artists=tables["artists"],
            tracks=tracks,
            users=users,
            editorial_seeds=tables["editorial_seeds"],
            streams=streams,
            plays=None,
            quarantine=Quarantine(),
            input_rows={"streams": len(streams)},
            sources={},
        )


def genuine_plays(
    n_users: int = 400,
    n_tracks: int = 600,
    n_artists: int = 200,
    n_styles: int = 8,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Tables of a ``plays`` platform whose listeners have graded, clustered taste.

    Artist ``a{i}`` belongs to style ``i % n_styles``; track ``t{j}`` is by
    artist ``a{j % n_artists}``. Each listener has a favourite style and
    draws 5 to 60 tracks, 70 % from that style and the rest from the whole
    catalogue, with Zipf-like popularity inside each, and play counts from a
    log-normal: fans of one style share many tracks, each a different subset.
    """
    rng = np.random.default_rng(seed)
    tables = catalogue(n_tracks, n_artists)
    style = (np.arange(n_tracks) % n_artists) % n_styles
    pop = 1.0 / np.arange(1, n_tracks + 1) ** 0.8
    pop = pop[rng.permutation(n_tracks)]
    rows_u, rows_t, rows_c = [], [], []
    for u in range(n_users):
        fav = rng.integers(n_styles)
        size = int(rng.integers(5, 61))
        w = pop * np.where(style == fav, 0.7 / pop[style == fav].sum(), 0.3 / pop.sum())
        tracks = rng.choice(n_tracks, size=size, replace=False, p=w / w.sum())
        rows_u += [f"u{u}"] * size
        rows_t += [f"t{t}" for t in tracks]
        rows_c += list(np.maximum(1, rng.lognormal(2.0, 1.2, size)).astype(np.int64))
    tables["users"] = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in range(n_users)],
            "personalization_consent": [True] * n_users,
            "created_at": pd.to_datetime(["2020-01-01T00:00Z"] * n_users, utc=True),
        }
    )
    tables["plays"] = pd.DataFrame({"user_id": rows_u, "track_id": rows_t, "plays": rows_c})
    return tables
