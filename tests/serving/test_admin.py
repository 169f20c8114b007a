"""Admin routes and operations: auth, takedowns, erasure, reload, metrics, overload."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from recsys.pipeline import train
from recsys.state import StateStore
from recsys.synth import generate_platform
from serving.app import create_app
from serving.metrics import ServiceMetrics, ServiceMiddleware
from serving.settings import ServiceSettings
from training.pipeline import run_training

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Path:
    return generate_platform(tmp_path_factory.mktemp("p") / "data", scale="tiny", seed=11).out_dir


@pytest.fixture()
def setup(platform: Path, tmp_path: Path):
    """A directory of artifacts with one artifact, a state file, a client with a token."""
    root = tmp_path / "artifacts"
    root.mkdir()
    first = train(platform, root).path
    settings = ServiceSettings(
        artifact=root, state_path=tmp_path / "state.sqlite", admin_token=TOKEN
    )
    return root, first, settings


def _user_with_recs(client: TestClient, artifact: Path) -> str:
    return str(pd.read_parquet(artifact / "model/users.parquet")["user_id"].iloc[0])


def _all_routes(client: TestClient, user: str, artist: str, track: str) -> dict[str, list[dict]]:
    """Items of every track-returning route, keyed by route."""
    out = {
        "recommendations": client.get(f"/v1/users/{user}/recommendations?k=100").json()["items"],
        "release_radar": client.get(f"/v1/users/{user}/release-radar?size=100").json()["items"],
        "artist_radio": client.get(f"/v1/radio/artists/{artist}?size=100&user_id={user}").json()[
            "items"
        ],
        "track_radio": client.get(f"/v1/radio/tracks/{track}?size=100").json()["items"],
    }
    mixes = client.get(f"/v1/users/{user}/mixes?n=10&size=50").json()["mixes"]
    out["mixes"] = [i for m in mixes for i in m["items"]]
    out["unknown_user"] = client.get("/v1/users/nobody-at-all/recommendations?k=100").json()[
        "items"
    ]
    return out


def test_admin_needs_the_token(setup) -> None:
    _, _, settings = setup
    with TestClient(create_app(settings)) as c:
        body = {"track_ids": ["t0000001"]}
        assert c.post("/v1/admin/takedowns", json=body).status_code == 401
        bad = {"Authorization": "Bearer wrong"}
        r = c.post("/v1/admin/takedowns", json=body, headers=bad)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert c.post("/v1/admin/reload", headers=AUTH).status_code == 200
    off = settings.model_copy(update={"admin_token": None})
    with TestClient(create_app(off)) as c:
        r = c.post("/v1/admin/takedowns", json={"track_ids": []}, headers=AUTH)
        assert r.status_code == 403  # no token configured: admin routes are off, not open
        assert c.delete("/v1/admin/users/u1", headers=AUTH).status_code == 403


def test_takedowns_vanish_from_every_route_at_once_and_stay_gone(setup, platform: Path) -> None:
    root, first, settings = setup
    with TestClient(create_app(settings)) as c:
        user = _user_with_recs(c, first)
        recs = c.get(f"/v1/users/{user}/recommendations?k=20").json()["items"]
        top_track, top_artist = recs[0]["track_id"], recs[1]["artist_id"]
        radio = c.get(f"/v1/radio/artists/{top_artist}?size=50").json()["items"]
        assert any(i["artist_id"] == top_artist for i in radio)
        artists = pd.read_parquet(first / "catalogue/artists.parquet").set_index("artist_id")
        label = str(artists.loc[recs[2]["artist_id"], "label_id"])
        before = _all_routes(c, user, top_artist, top_track)
        assert any(i["track_id"] == top_track for i in before["recommendations"])

        r = c.post(
            "/v1/admin/takedowns",
            json={"track_ids": [top_track], "artist_ids": [top_artist], "label_ids": [label]},
            headers=AUTH,
        )
        assert r.status_code == 200 and r.json()["added"] == 3

        tracks = pd.read_parquet(first / "catalogue/tracks.parquet")
        gone = set(
            tracks.loc[
                (tracks["track_id"] == top_track)
                | (tracks["artist_id"] == top_artist)
                | (tracks["label_id"] == label),
                "track_id",
            ]
        )

        def check(client: TestClient) -> None:
            for route, items in _all_routes(client, user, top_artist, top_track).items():
                assert not {i["track_id"] for i in items} & gone, route
            similar = client.get(f"/v1/artists/{recs[3]['artist_id']}/similar?k=50").json()["items"]
            assert top_artist not in {s["artist_id"] for s in similar}

        check(c)  # the very next response
        metrics = c.get("/metrics").text
        assert 'recsys_takedowns{entity="track"} 1.0' in metrics

    with TestClient(create_app(settings)) as c:  # after a restart
        check(c)

    # After the next training run, which reads the same state file.
    new = run_training(platform, root, state_path=settings.state_path).path
    served = pd.read_parquet(new / "catalogue/tracks.parquet")
    assert not served.loc[served["in_pool"], "track_id"].isin(gone).any()
    with TestClient(create_app(settings)) as c:
        assert (
            c.get("/v1/model").json()["version"]
            == json.loads((new / "manifest.json").read_text())["version"]
        )
        check(c)


def test_erasure_is_immediate_and_leaves_no_trace(setup, platform: Path) -> None:
    root, first, settings = setup
    with TestClient(create_app(settings)) as c:
        user = _user_with_recs(c, first)
        assert c.get(f"/v1/users/{user}/recommendations").json()["personalized"] is True
        r = c.delete(f"/v1/admin/users/{user}", headers=AUTH)
        assert r.status_code == 200 and r.json() == {
            **r.json(),
            "user_id": user,
            "erased": True,
            "new": True,
        }
        assert c.get(f"/v1/users/{user}/recommendations").json()["personalized"] is False
        assert c.get(f"/v1/users/{user}/mixes").json()["personalized"] is False
        assert c.get(f"/v1/users/{user}/release-radar").json()["personalized"] is False
        assert c.delete(f"/v1/admin/users/{user}", headers=AUTH).json()["new"] is False

    new = run_training(platform, root / "next", state_path=settings.state_path).path
    # No trace: the id appears in no file of the new artifact, in no column.
    for f in new.rglob("*"):
        if f.suffix == ".parquet":
            frame = pd.read_parquet(f)
            for col in frame.columns:
                if frame[col].dtype == object:
                    assert not frame[col].astype(str).str.contains(user, regex=False).any(), (
                        f,
                        col,
                    )
        elif f.is_file() and f.suffix in (".json", ".csv"):
            assert user not in f.read_text(errors="replace"), f
        elif f.is_file():
            assert user.encode() not in f.read_bytes(), f


def test_reload_swaps_and_refuses_broken(setup, platform: Path) -> None:
    root, first, settings = setup
    with TestClient(create_app(settings)) as c:
        v1 = c.get("/v1/model").json()["version"]
        assert c.post("/v1/admin/reload", headers=AUTH).json() == {
            "reloaded": False,
            "model_version": v1,
        }
        old_engine = c.app.state.holder.engine
        second = train(platform, root).path
        r = c.post("/v1/admin/reload", headers=AUTH)
        v2 = json.loads((second / "manifest.json").read_text())["version"]
        assert r.json() == {"reloaded": True, "model_version": v2}
        assert c.get("/v1/model").json()["version"] == v2
        # A request that took the old engine before the swap still finishes on it.
        assert old_engine.version == v1 and old_engine.recommender.for_user("x", 3).items

        third = train(platform, root).path
        f = third / "model/item_factors.npy"
        f.write_bytes(f.read_bytes()[:-8])  # a broken newest artifact
        r = c.post("/v1/admin/reload", headers=AUTH)
        assert r.status_code == 409 and r.json()["error"]["code"] == "artifact_refused"
        assert c.get("/v1/model").json()["version"] == v2  # the old one keeps serving
        assert c.get("/v1/users/x/recommendations").status_code == 200
        assert 'recsys_reloads{result="refused"} 1.0' in c.get("/metrics").text
        shutil.rmtree(third)


def test_metrics_per_route(setup) -> None:
    _, first, settings = setup
    with TestClient(create_app(settings)) as c:
        c.get("/v1/users/someone/recommendations?k=3")
        c.get("/v1/users/other/recommendations?k=3")
        c.get("/v1/users/other/recommendations?k=0")
        text = c.get("/metrics").text
        version = json.loads((first / "manifest.json").read_text())["version"]
        assert f'recsys_model_info{{version="{version}"}} 1.0' in text
        route = 'route="/v1/users/{user_id}/recommendations"'
        assert f'recsys_requests_total{{method="GET",{route},status="200"}} 2.0' in text
        assert f'recsys_requests_total{{method="GET",{route},status="422"}} 1.0' in text
        assert "recsys_request_duration_seconds_bucket" in text and "recsys_pool_size" in text
        if sys.platform.startswith("linux"):  # the process collector reads /proc
            rss = re.search(r"^process_resident_memory_bytes (\S+)$", text, re.M)
            assert rss is not None and float(rss.group(1)) > 10 * 2**20


def test_readyz_false_until_loaded(tmp_path: Path) -> None:
    settings = ServiceSettings(artifact=None, state_path=tmp_path / "s.sqlite")
    with TestClient(create_app(settings)) as c:
        assert c.get("/readyz").status_code == 503
        assert "recsys_ready 0.0" in c.get("/metrics").text


def test_overload_gets_503_with_retry_after() -> None:
    release = asyncio.Event()

    async def slow_app(scope, receive, send):
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    mw = ServiceMiddleware(slow_app, metrics=ServiceMetrics(), max_in_flight=2, retry_after_s=3)
    sent: list[list[dict]] = [[], [], [], []]

    async def call(i: int, path: str = "/v1/x") -> None:
        async def send(message):
            sent[i].append(message)

        scope = {"type": "http", "path": path, "method": "GET"}
        await mw(scope, None, send)

    async def main() -> None:
        tasks = [asyncio.create_task(call(i)) for i in range(2)]
        await asyncio.sleep(0.01)
        await call(2)  # a third request while two are in flight
        health = asyncio.create_task(call(3, "/healthz"))  # health is never refused
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(*tasks, health)

    asyncio.run(main())
    start = sent[2][0]
    assert start["status"] == 503 and (b"retry-after", b"3") in start["headers"]
    assert json.loads(sent[2][1]["body"])["error"]["code"] == "overloaded"
    assert [m["status"] for m in (sent[0][0], sent[1][0], sent[3][0])] == [200, 200, 200]
    assert mw.in_flight == 0


def test_state_store_is_shared_between_servers(setup) -> None:
    """A takedown made through one server process is applied by another on its next request."""
    _, first, settings = setup
    with TestClient(create_app(settings)) as c:
        user = _user_with_recs(c, first)
        top = c.get(f"/v1/users/{user}/recommendations?k=5").json()["items"][0]["track_id"]
        StateStore(settings.state_path).add_takedowns(track_ids=[top])  # "another process"
        ids = [
            i["track_id"] for i in c.get(f"/v1/users/{user}/recommendations?k=50").json()["items"]
        ]
        assert top not in ids
