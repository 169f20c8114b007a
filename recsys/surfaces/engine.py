"""The serving engine: one loaded artifact, the platform state, and the surfaces over them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys.artifact.loaded import Artifact
from recsys.pool import Takedowns
from recsys.state import StateSnapshot
from recsys.surfaces.listening import ListeningSurfaces
from recsys.surfaces.recommend import Recommender
from recsys.surfaces.settings import SurfaceSettings

#: Catalogue columns the surfaces read: what a server loads
#: (:meth:`recsys.artifact.loaded.Artifact.load`, ``catalogue_columns``). Takedowns
#: of artists and labels use the artifact's row and code arrays, not id strings.
SERVING_CATALOGUE_COLUMNS = (
    "track_id",
    "title",
    "release_date",
    "in_pool",
    "model_row",
    "listeners",
)


def takedown_mask(artifact: Artifact, takedowns: Takedowns) -> np.ndarray:
    """Catalogue tracks hit by a takedown of the track, its artist or its label.

    Returns
    -------
    ndarray
        Boolean, shape (n_tracks,).
    """
    mask = np.zeros(len(artifact.tracks), dtype=bool)
    if takedowns.track_ids:
        rows = artifact.track_rows(sorted(takedowns.track_ids))
        mask[rows[rows >= 0]] = True
    if takedowns.artist_ids:
        rows = artifact.artist_rows(sorted(takedowns.artist_ids))
        mask |= np.isin(artifact.track_artist, rows[rows >= 0])
    if takedowns.label_ids:
        codes = np.flatnonzero(np.isin(artifact.label_ids, sorted(takedowns.label_ids)))
        mask |= np.isin(artifact.track_label, codes)
    return mask


class Engine:
    """Everything that answers requests for one artifact and one state of the platform.

    An engine is immutable once built. A reload builds a new engine beside the
    old one, and a takedown or erasure builds a new view of the same artifact
    (:meth:`with_state`); the server swaps the reference, so requests in
    flight finish on the engine they started with.

    Parameters
    ----------
    artifact
        The loaded artifact.
    state
        Takedowns and erasures recorded since (or before) training; ``None``: none.
    settings
        Surface settings (per-artist cap, release window, ...).
    """

    def __init__(
        self,
        artifact: Artifact,
        *,
        state: StateSnapshot | None = None,
        settings: SurfaceSettings | None = None,
    ) -> None:
        self.artifact = artifact
        self.settings = settings
        self.state_generation = state.generation if state is not None else 0
        takedowns = state.takedowns if state is not None else Takedowns()
        erased = state.erased_users if state is not None else frozenset()
        blocked = takedown_mask(artifact, takedowns)
        self.blocked_tracks = blocked
        # Radios, mixes, release radar, similar artists (recsys.surfaces.listening).
        self.listening = ListeningSurfaces(
            artifact, settings, blocked_tracks=blocked, erased_users=erased
        )
        self.recommender = Recommender(
            artifact,
            blocked_items=blocked[artifact.item_track],
            blocked_tracks=blocked,
            erased_users=erased,
            popular_rows=self.listening.ctx.popular_rows,  # the same list, held once
        )

    @property
    def version(self) -> str:
        return self.artifact.version

    @property
    def pool_size(self) -> int:
        """Pool tracks that may be served now (takedowns since training removed)."""
        return int((self.artifact.tracks["in_pool"].to_numpy() & ~self.blocked_tracks).sum())

    def with_state(self, state: StateSnapshot) -> Engine:
        """The same artifact under a newer platform state."""
        return Engine(self.artifact, state=state, settings=self.settings)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        state: StateSnapshot | None = None,
        settings: SurfaceSettings | None = None,
    ) -> Engine:
        """Load and check the artifact at ``path`` (or the newest inside it)."""
        return cls(Artifact.load(path), state=state, settings=settings)
