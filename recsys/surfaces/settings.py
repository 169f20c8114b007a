"""Settings of the listening surfaces (radios, mixes, release radar, similar artists)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from recsys.errors import ConfigError


@dataclass(frozen=True)
class SurfaceSettings:
    """How the listening surfaces compose their answers.

    Parameters
    ----------
    max_per_artist
        Most tracks by one artist in one radio, mix or release radar.
    personal_weight
        Weight of the user's vector in a personalised radio's query (the
        seed's vector has the rest).
    radio_fetch_factor
        Item-to-item candidates fetched per requested track (the HNSW
        search breadth follows the fetch).
    tracks_per_artist
        Tracks of one artist that compete for its places in a radio or mix:
        its most listened eligible ones (not held back).

        Both are set for speed. Before, every track of every neighbour
        artist was scored (about 3,700 per radio on a 1M-track pool), and
        4 candidates per track were fetched. Under load on that pool (the
        serving benchmark, docs/serving.md) the server spent 3.4 ms of CPU
        per request with these defaults, against 4.3 ms with 200 and 4
        (means of 3 and 4 runs). Radios changed: 69 % of an artist radio's
        tracks and 65 % of a track radio's are the same as before (400
        radios of 50 each): the cap keeps each neighbour artist's
        better-known tracks, and fewer item-to-item candidates are fetched.
    mix_max_artists
        A user's most-listened artists that the mixes are built from.
    mix_merge_similarity
        Listened artists are grouped into one mix while the average cosine
        of their vectors stays at or above this (average-linkage clustering).
    mix_min_share
        A style group needs at least this share of the user's listening (in
        distinct tracks) to become a mix.
    mix_familiar_share
        Share of a mix made of tracks the user already streamed; the rest
        are discoveries in the same style.
    release_window_days
        A release is recent when at most this many days older than the
        reference date.
    release_reference
        Reference date of the release radar; ``None``: the end of the
        artifact's data window (its latest stream), or today without one.
    """

    max_per_artist: int = 3
    personal_weight: float = 0.3
    radio_fetch_factor: int = 2
    tracks_per_artist: int = 30
    mix_max_artists: int = 60
    mix_merge_similarity: float = 0.35
    mix_min_share: float = 0.05
    mix_familiar_share: float = 0.4
    release_window_days: int = 28
    release_reference: dt.date | None = None

    def __post_init__(self) -> None:
        if min(self.max_per_artist, self.radio_fetch_factor, self.mix_max_artists) < 1:
            raise ConfigError("max_per_artist, radio_fetch_factor, mix_max_artists must be >= 1")
        if self.tracks_per_artist < self.max_per_artist:
            raise ConfigError("tracks_per_artist must be >= max_per_artist")
        for name in ("personal_weight", "mix_min_share", "mix_familiar_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1]")
        if not -1.0 <= self.mix_merge_similarity <= 1.0:
            raise ConfigError("mix_merge_similarity must be in [-1, 1]")
        if self.release_window_days < 1:
            raise ConfigError("release_window_days must be >= 1")
