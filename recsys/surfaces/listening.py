"""The listening surfaces of one engine: radios, mixes, release radar, similar artists.

``ListeningSurfaces`` is what the HTTP layer calls; each method validates
ids (raising :class:`~recsys.errors.UnknownArtist` /
:class:`~recsys.errors.UnknownTrack`), decides whether the answer is
personalised (only for users the model knows: consenting, with training
data) and delegates to :mod:`~recsys.surfaces.radio`,
:mod:`~recsys.surfaces.mixes`, :mod:`~recsys.surfaces.release_radar`.
Every track returned is in the trusted pool and not taken down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from recsys.artifact.loaded import Artifact
from recsys.graph.build import PROVENANCES
from recsys.surfaces import mixes as _mixes
from recsys.surfaces.context import SurfaceContext
from recsys.surfaces.mixes import Mix
from recsys.surfaces.radio import radio
from recsys.surfaces.recommend import Item
from recsys.surfaces.release_radar import release_radar
from recsys.surfaces.settings import SurfaceSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackList:
    """A radio or a release radar."""

    items: list[Item]
    personalized: bool
    model_version: str
    user_id: str | None = None


@dataclass(frozen=True)
class Mixes:
    """A user's mixes."""

    user_id: str
    mixes: list[Mix]
    personalized: bool
    model_version: str


@dataclass(frozen=True)
class SimilarArtist:
    """One similar artist with the provenance of the relation."""

    artist_id: str
    name: str
    score: float
    provenance: str


@dataclass(frozen=True)
class SimilarArtists:
    """An artist's similar artists, editorial relations first."""

    artist_id: str
    name: str
    items: list[SimilarArtist]
    model_version: str


class ListeningSurfaces:
    """Radios, mixes, release radar and similar artists over one artifact.

    Parameters
    ----------
    artifact
        The served artifact (its similar-artist graph included).
    settings
        Per-artist cap, release window, mix shape, ...
    blocked_tracks
        Boolean mask over catalogue tracks, shape (n_tracks,): taken down
        since training; never returned.
    erased_users
        Users erased since training: answered as unknown users.
    """

    def __init__(
        self,
        artifact: Artifact,
        settings: SurfaceSettings | None = None,
        *,
        blocked_tracks: np.ndarray | None = None,
        erased_users: frozenset[str] = frozenset(),
    ) -> None:
        self.ctx = SurfaceContext(
            artifact, settings, blocked_tracks=blocked_tracks, erased_users=erased_users
        )
        self.version = artifact.version

    def _user(self, user_id: str | None) -> int | None:
        return self.ctx.user_row(user_id)

    def artist_radio(self, artist_id: str, size: int, *, user_id: str | None = None) -> TrackList:
        """Radio seeded by an artist (see :func:`recsys.surfaces.radio.radio`)."""
        row = self.ctx.artist_row(artist_id)
        user_row = self._user(user_id)
        items = radio(self.ctx, row, size, user_row=user_row)
        return TrackList(items, user_row is not None, self.version, user_id)

    def track_radio(self, track_id: str, size: int, *, user_id: str | None = None) -> TrackList:
        """Radio seeded by a track: the track, then its artist's radio around its vector."""
        track = self.ctx.track_row(track_id)
        user_row = self._user(user_id)
        artist = int(self.ctx.track_artist[track])
        items = radio(self.ctx, artist, size, seed_track=track, user_row=user_row)
        return TrackList(items, user_row is not None, self.version, user_id)

    def mixes(self, user_id: str, n: int, size: int) -> Mixes:
        """Up to ``n`` style mixes of ``size`` tracks (see :mod:`recsys.surfaces.mixes`)."""
        found, personal = _mixes.mixes(self.ctx, self._user(user_id), n, size)
        return Mixes(user_id, found, personal, self.version)

    def release_radar(self, user_id: str, size: int) -> TrackList:
        """Recent releases (see :mod:`recsys.surfaces.release_radar`)."""
        user_row = self._user(user_id)
        items = release_radar(self.ctx, user_row, size)
        return TrackList(items, user_row is not None, self.version, user_id)

    def similar_artists(self, artist_id: str, k: int) -> SimilarArtists:
        """The ``k`` most similar artists: editorial relations first, then anchored learned ones.

        Artists whose every pool track was taken down since training are left out.
        """
        if k <= 0:
            raise ValueError("k must be positive")
        row = self.ctx.artist_row(artist_id)
        rows, scores, prov = self.ctx.graph.neighbours(row)
        ok = self.ctx.artist_available[rows]
        rows, scores, prov = rows[ok][:k], scores[ok][:k], prov[ok][:k]
        items = [
            SimilarArtist(
                self.ctx.artist_id(b), self.ctx.artist_name(b), round(float(s), 6), PROVENANCES[p]
            )
            for b, s, p in zip(rows.tolist(), scores.tolist(), prov.tolist(), strict=True)
        ]
        return SimilarArtists(artist_id, self.ctx.artist_name(row), items, self.version)
