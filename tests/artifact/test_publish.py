"""publish_artifact: the one writer of the artifact layout, and synthetic artifacts through it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from recsys.artifact.loaded import Artifact
from recsys.artifact.publish import ArtifactParts, check_parts, publish_artifact
from recsys.artifact.store import read_manifest
from recsys.config import RetrievalConfig
from recsys.errors import ArtifactError
from recsys.retrieval import StoredAnswers, build_index
from recsys.surfaces.engine import Engine
from recsys.synth.artifact import SyntheticSpec, publish_synthetic_artifact, synthetic_parts

SPEC = SyntheticSpec(n_pool_tracks=600, n_artists=40, n_users=80, factors=16, n_styles=5, seed=3)


@pytest.fixture(scope="module")
def parts() -> tuple[ArtifactParts, dict]:
    return synthetic_parts(SPEC)


def _manifest(sections: dict, version: str = "v-test") -> dict:
    return {"version": version, "created_at": dt.datetime.now(dt.UTC).isoformat(), **sections}


def test_published_parts_load_and_serve(parts, tmp_path: Path) -> None:
    p, sections = parts
    assert check_parts(p) == []
    written = publish_artifact(tmp_path / "a", p, _manifest(sections))
    assert written["retrieval"]["user_track"] == {"kind": "exact", "metric": "ip", "size": 600}
    assert written["graph"]["relations"]["editorial"] > 0
    assert read_manifest(tmp_path / "a")["files"] == written["files"]  # checksums verify
    for rel in (
        "catalogue/tracks.parquet",
        "model/seen.npz",
        "index/user_track.faiss",
        "index/item_item.faiss",
        "graph/relations.parquet",
        "pool/exclusions.parquet",
        "index/user_track.user_answers.npz",
        "index/item_item.artist_answers.npz",
    ):
        assert rel in written["files"], rel
    answers = written["retrieval"]["stored_answers"]
    assert answers["users"] == {"stored": SPEC.n_users, "depth": 50}
    assert answers["artists"]["depth"] == 100 and 0 < answers["artists"]["stored"] <= SPEC.n_artists

    engine = Engine.load(tmp_path / "a")
    art = engine.artifact
    assert art.version == "v-test" and art.pool_size == 600 and len(art.item_factors) == 600
    assert art.seen.nnz == p.seen.nnz and set(np.unique(art.seen.data)) == {1.0}
    recs = engine.recommender.for_user("u0000001", 20)
    assert recs.personalized and len(recs.items) == 20
    assert not engine.recommender.for_user("nobody", 5).personalized
    artist = str(art.artists["artist_id"].iloc[0])
    assert len(engine.listening.artist_radio(artist, 30).items) == 30
    out_of_pool = art.tracks.loc[~art.tracks["in_pool"], "track_id"]
    assert len(out_of_pool) > 0  # the synthetic catalogue has tracks outside the pool
    served = {i.track_id for i in engine.listening.artist_radio(artist, 100).items}
    assert not served & set(out_of_pool)


def test_synthetic_artifact_is_deterministic_and_versioned(tmp_path: Path) -> None:
    spec = dataclasses.replace(SPEC, n_pool_tracks=300, n_artists=20, n_users=30)
    a = publish_synthetic_artifact(tmp_path / "a", spec)
    b = publish_synthetic_artifact(tmp_path / "b", spec)
    assert a["version"] != b["version"] and a["data"]["synthetic"] is True
    for rel in ("model/item_factors.npy", "model/seen.npz", "catalogue/tracks.parquet"):
        assert a["files"][rel]["sha256"] == b["files"][rel]["sha256"], rel
    assert "timings_s" in a
    for rel in ("index/user_track.user_answers.npz", "index/item_item.artist_answers.npz"):
        assert a["files"][rel]["sha256"] == b["files"][rel]["sha256"], rel
    # Without stored answers (depth 0) the artifact still loads and serves, live.
    none = RetrievalConfig(answer_depth_users=0, answer_depth_artists=0)
    c = publish_synthetic_artifact(tmp_path / "c", spec, retrieval=none)
    assert c["retrieval"]["stored_answers"] == {
        "users": {"stored": 0, "depth": 0},
        "artists": {"stored": 0, "depth": 0},
    }
    engine = Engine.load(tmp_path / "c")
    assert engine.artifact.user_answers is None and engine.artifact.artist_answers is None
    assert len(engine.recommender.for_user("u0000001", 10).items) == 10


def _broken(p: ArtifactParts, what: str) -> tuple[ArtifactParts, str]:
    if what == "missing_column":
        return dataclasses.replace(p, tracks=p.tracks.drop(columns=["model_row"])), "lack columns"
    if what == "seen_shape":
        return dataclasses.replace(p, seen=p.seen[:, :-1]), "seen has shape"
    if what == "index_size":
        small = build_index(p.item_factors[:-1], metric="ip")
        return dataclasses.replace(p, user_index=small), "index user_track"
    if what == "user_factors":
        return dataclasses.replace(p, user_factors=p.user_factors[:-1]), "user factors"
    if what == "user_answers":
        short = StoredAnswers(p.user_answers.ids[:-1])
        return dataclasses.replace(p, user_answers=short), "user answers are for"
    if what == "artist_answers":
        a = p.artist_answers
        beyond = StoredAnswers(np.full_like(a.ids, len(p.item_factors)), a.rows, a.n_queries)
        return dataclasses.replace(p, artist_answers=beyond), "artist answers name items"
    if what == "out_of_pool_item":
        tracks = p.tracks.copy()
        tracks.loc[tracks["model_row"] == 0, "in_pool"] = False
        return dataclasses.replace(p, tracks=tracks), "outside the trusted pool"
    raise AssertionError(what)


@pytest.mark.parametrize(
    "what",
    [
        "missing_column",
        "seen_shape",
        "index_size",
        "user_factors",
        "user_answers",
        "artist_answers",
        "out_of_pool_item",
    ],
)
def test_partial_or_inconsistent_parts_are_refused(parts, tmp_path: Path, what: str) -> None:
    p, sections = parts
    bad, message = _broken(p, what)
    with pytest.raises(ArtifactError, match=message):
        publish_artifact(tmp_path / "a", bad, _manifest(sections))
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left


def test_manifest_needs_version_and_refusal_keeps_previous(parts, tmp_path: Path) -> None:
    p, sections = parts
    publish_artifact(tmp_path / "a", p, _manifest(sections, "v1"))
    with pytest.raises(ArtifactError, match="version"):
        publish_artifact(tmp_path / "a", p, {**_manifest(sections), "version": ""})
    bad, _ = _broken(p, "seen_shape")
    with pytest.raises(ArtifactError):
        publish_artifact(tmp_path / "a", bad, _manifest(sections, "v2"))
    assert Artifact.load(tmp_path / "a").version == "v1"
    assert [c.name for c in tmp_path.iterdir()] == ["a"]


def test_synthetic_artifact_answers_fold_in(parts, tmp_path: Path) -> None:
    p, sections = parts
    publish_artifact(tmp_path / "a", p, _manifest(sections))
    engine = Engine.load(tmp_path / "a")
    heard = [
        str(t)
        for t in engine.artifact.tracks.loc[engine.artifact.tracks["in_pool"], "track_id"][:5]
    ]
    recs = engine.recommender.for_history(heard, [3.0] * len(heard), 10)
    assert recs.personalized and len(recs.items) == 10
    assert not {i.track_id for i in recs.items} & set(heard)
