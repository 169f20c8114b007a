"""A loaded artifact holds its item vectors once: the indexes' storage, float32 or float16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recsys.artifact.loaded as loaded_module
from recsys.artifact.loaded import Artifact
from recsys.config import RetrievalConfig
from recsys.surfaces.engine import Engine
from recsys.synth.artifact import SyntheticSpec, publish_synthetic_artifact

SPEC = SyntheticSpec(n_pool_tracks=600, n_artists=30, n_users=40, factors=8, n_styles=3)


@pytest.mark.parametrize("storage", ["float16", "float32"])
def test_item_vectors_are_the_index_storage(tmp_path: Path, storage: str) -> None:
    retrieval = RetrievalConfig(exact_threshold=0, hnsw_storage=storage)  # HNSW even when small
    publish_synthetic_artifact(tmp_path / "a", SPEC, retrieval=retrieval)
    art = Artifact.load(tmp_path / "a")
    assert art.user_index.storage == art.item_index.storage == storage
    assert art.user_index.mapped and art.item_index.mapped  # pages of the files, not copies
    saved = np.load(tmp_path / "a" / "model/item_factors.npy")
    assert saved.dtype == np.float32  # the artifact keeps the model's float32 factors
    # Served: the user index's own vectors (no second copy), equal to the saved factors
    # (in float16 to within one unit in the last place).
    assert art.item_factors.dtype == np.dtype(storage)
    assert np.shares_memory(art.item_factors, art.user_index.vectors)
    np.testing.assert_allclose(art.item_factors.astype(np.float32), saved, rtol=2**-10, atol=1e-7)
    assert np.shares_memory(art.item_unit, art.item_index.vectors)

    engine = Engine.load(tmp_path / "a")
    user = str(art.user_ids[0])
    recs = engine.recommender.for_user(user, 10)
    assert recs.personalized and len(recs.items) == 10
    scores = [i.score for i in recs.items]
    assert scores == sorted(scores, reverse=True)
    artist = str(art.artists["artist_id"].iloc[0])
    assert len(engine.listening.artist_radio(artist, 20).items) == 20


def test_gram_in_blocks_equals_the_whole_product(tmp_path: Path, monkeypatch) -> None:
    publish_synthetic_artifact(tmp_path / "a", SPEC)
    art = Artifact.load(tmp_path / "a")
    monkeypatch.setattr(loaded_module, "_GRAM_ROWS", 7)  # many blocks, the last one short
    y = np.asarray(art.item_factors, dtype=np.float64)
    assert len(y) % 7 != 0
    np.testing.assert_allclose(art.gram, y.T @ y, rtol=1e-12)


@pytest.mark.parametrize("storage", ["float16", "float32"])
def test_held_once_compares_the_file_block_by_block(
    tmp_path: Path, monkeypatch, storage: str
) -> None:
    """Many blocks, the last one short: the index's vectors when every block matches, else the file."""
    retrieval = RetrievalConfig(exact_threshold=0, hnsw_storage=storage)
    publish_synthetic_artifact(tmp_path / "a", SPEC, retrieval=retrieval)
    art = Artifact.load(tmp_path / "a")
    path = tmp_path / "a" / "model/item_factors.npy"
    saved = np.load(path)
    monkeypatch.setattr(loaded_module, "_COMPARE_ROWS", 7)
    assert len(saved) % 7 != 0
    assert np.shares_memory(loaded_module._held_once(path, art.user_index), art.user_index.vectors)

    # One value off in the last (short) block: the saved factors, read from the file.
    changed = saved.copy()
    changed[-1, 0] += 1.0
    np.save(path, changed)
    got = loaded_module._held_once(path, art.user_index)
    assert not np.shares_memory(got, art.user_index.vectors)
    np.testing.assert_array_equal(got, changed)


def test_holds_allows_one_unit_in_the_last_place_only() -> None:
    saved = np.array([[1.0, -2.5, 1e-3], [3.0, -0.1, 7.0]], dtype=np.float32)
    held = saved.astype(np.float16)
    assert loaded_module._holds(held, saved)
    bits = held.view(np.int16).copy()
    bits[0, 1] += 1  # the next half float (away from zero, for a negative value)
    assert loaded_module._holds(bits.view(np.float16), saved)
    bits[1, 0] += 2  # two units: another value
    assert not loaded_module._holds(bits.view(np.float16), saved)
    flipped = held.copy()
    flipped[1, 2] = -flipped[1, 2]
    assert not loaded_module._holds(flipped, saved)
    assert loaded_module._holds(saved.copy(), saved)
    assert not loaded_module._holds(saved * 1.0001, saved)


def test_track_ids_and_titles_come_from_the_catalogue_strings(tmp_path: Path) -> None:
    """Lookups and the ids and titles answers are made from agree with the catalogue frame."""
    from recsys.lookup import StringLookup

    spec = SyntheticSpec(n_pool_tracks=300, n_artists=20, n_users=30, factors=8, seed=4)
    publish_synthetic_artifact(tmp_path / "a", spec)
    art = Artifact.load(tmp_path / "a")
    ids = art.tracks["track_id"].tolist()
    assert isinstance(art._track_rows, StringLookup)  # no Python string per track held
    rows = np.array([5, 0, len(ids) - 1, 17])
    assert art.track_ids_of(rows) == [ids[r] for r in rows]
    assert art.track_rows([ids[17], "nope", ids[0]]).tolist() == [17, -1, 0]
    assert art.track_row(ids[42]) == 42 and art.track_row("nope") == -1
    titles = art.tracks["title"]
    assert art.track_titles_of(rows) == [
        None if pd.isna(titles.iloc[r]) else titles.iloc[r] for r in rows
    ]
