"""The serving engine: one loaded artifact and the surfaces built over it."""

from __future__ import annotations

from pathlib import Path

from recsys.artifact.loaded import Artifact
from recsys.surfaces.listening import ListeningSurfaces
from recsys.surfaces.recommend import Recommender


class Engine:
    """Everything that answers requests for one artifact.

    An engine is immutable once built: a reload builds a new engine beside
    the old one and swaps the reference, so requests in flight finish on
    the engine they started with.
    """

    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        self.recommender = Recommender(artifact)
        # Radios, mixes, release radar, similar artists (recsys.surfaces.listening).
        self.listening = ListeningSurfaces(artifact)

    @property
    def version(self) -> str:
        return self.artifact.version

    @classmethod
    def load(cls, path: str | Path) -> Engine:
        """Load and check the artifact at ``path`` (or the newest inside it)."""
        return cls(Artifact.load(path))
