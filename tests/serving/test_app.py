"""End to end over HTTP: generate, train, serve, query."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from recsys.pipeline import train
from recsys.synth import generate_platform
from serving.app import create_app
from serving.settings import ServiceSettings


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    data = generate_platform(tmp_path_factory.mktemp("p") / "data", scale="tiny", seed=5).out_dir
    return train(data, tmp_path_factory.mktemp("a") / "artifacts").path


@pytest.fixture(scope="module")
def client(artifact: Path, tmp_path_factory):
    state = tmp_path_factory.mktemp("state") / "state.sqlite"
    with TestClient(create_app(ServiceSettings(artifact=artifact, state_path=state))) as c:
        yield c


def _pool(artifact: Path) -> set[str]:
    tracks = pd.read_parquet(artifact / "catalogue/tracks.parquet")
    return set(tracks.loc[tracks["in_pool"], "track_id"])


def test_personalised_recommendations(client: TestClient, artifact: Path) -> None:
    user = pd.read_parquet(artifact / "model/users.parquet")["user_id"].iloc[0]
    r = client.get(f"/v1/users/{user}/recommendations", params={"k": 7})
    assert r.status_code == 200
    body = r.json()
    assert body["user_id"] == user and body["personalized"] is True
    assert body["model_version"] == client.get("/v1/model").json()["version"]
    assert len(body["items"]) == 7
    for item in body["items"]:
        assert {"track_id", "artist_id", "score", "reason"} <= set(item)
        assert item["reason"].startswith("Because you listen to")
        assert item["reason_type"] == "listened_artist" and item["reason_artist_id"]
    assert {i["track_id"] for i in body["items"]} <= _pool(artifact)


def test_unknown_user_gets_marked_non_personalised(client: TestClient, artifact: Path) -> None:
    r = client.get("/v1/users/somebody-new/recommendations")
    assert r.status_code == 200
    body = r.json()
    assert body["personalized"] is False and len(body["items"]) == 20
    assert all(i["reason_type"] == "popular" for i in body["items"])
    assert {i["track_id"] for i in body["items"]} <= _pool(artifact)


@pytest.mark.parametrize("k", ["0", "-3", "100000", "abc", "1.5"])
def test_bad_sizes_are_422_json(client: TestClient, k: str) -> None:
    r = client.get("/v1/users/u0000001/recommendations", params={"k": k})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("user", ["a b", "%00", "x" * 300, "ü-user", "..."])
def test_odd_user_ids_are_4xx_json(client: TestClient, user: str) -> None:
    r = client.get(f"/v1/users/{user}/recommendations")
    assert 400 <= r.status_code < 500
    assert "error" in r.json()


def test_model_health_ready(client: TestClient) -> None:
    m = client.get("/v1/model").json()
    assert m["pool"]["eligible"] > 0 and "files" not in m
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert client.get("/nope").json()["error"]["code"] == "not_found"


def test_not_ready_without_artifact(tmp_path: Path) -> None:
    settings = ServiceSettings(artifact=None, state_path=tmp_path / "s.sqlite")
    with TestClient(create_app(settings)) as c:
        assert c.get("/readyz").status_code == 503
        r = c.get("/v1/users/u1/recommendations")
        assert r.status_code == 503 and r.json()["error"]["code"] == "no_model"
