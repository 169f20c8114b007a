"""Collaborative-filtering models trained on first-party data only."""

from recsys.models.als import ALSModel, artist_vectors, confidence

__all__ = ["ALSModel", "artist_vectors", "confidence"]
