"""``recsys serve --workers N``: a supervisor forks workers over one loaded artifact."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recsys.config import RetrievalConfig
from recsys.synth.artifact import SyntheticSpec, publish_synthetic_artifact

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
TOKEN = "t0ken"
SPEC = SyntheticSpec(n_pool_tracks=400, n_artists=20, n_users=30, factors=4, n_styles=2, seed=5)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="workers fork")


class Conn:
    """One keep-alive HTTP/1.1 connection (answers carry content-length)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=30)
        self.buf = b""
        self.closed_by_server = False

    def get(self, path: str, method: str = "GET", body: bytes = b"") -> tuple[int, dict, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        if body:
            head += "Content-Type: application/json\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n"
        self.sock.sendall(head.encode() + body)
        while b"\r\n\r\n" not in self.buf:
            self._read()
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.split(b"\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(b":", 1) for ln in lines[1:])}
        n = int(headers[b"content-length"])
        while len(self.buf) < n:
            self._read()
        out, self.buf = self.buf[:n], self.buf[n:]
        self.closed_by_server = headers.get(b"connection", b"").lower() == b"close"
        return int(lines[0][9:12]), headers, out

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.buf += chunk

    def close(self) -> None:
        self.sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _supervisor(
    tmp_path: Path,
    extra: dict[str, str],
    spec: SyntheticSpec = SPEC,
    retrieval: RetrievalConfig | None = None,
):
    """A directory with one artifact, served by a supervisor and two workers."""
    root = tmp_path / "artifacts"
    publish_synthetic_artifact(root / "a1", spec, retrieval=retrieval)
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")},
        "OPENBLAS_NUM_THREADS": "1",
        "RECSYS_ADMIN_TOKEN": TOKEN,
        "RECSYS_STATE_PATH": str(tmp_path / "state.sqlite"),
        "RECSYS_LOG_JSON": "false",
        **extra,
    }
    log = (tmp_path / "serve.log").open("wb")
    argv = [sys.executable, "-m", "training.cli", "serve", "--artifact", str(root)]
    proc = subprocess.Popen(
        [*argv, "--port", str(port), "--workers", "2"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                c = Conn(port)
                if c.get("/readyz")[0] == 200:
                    c.close()
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        yield proc, port, root
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()


@pytest.fixture()
def served(tmp_path: Path, request: pytest.FixtureRequest):
    """A directory with one artifact, served by a supervisor and two workers.

    Parametrised indirectly with extra environment variables (``{tmp}`` in a
    value is the test's temporary directory).
    """
    extra = {k: v.format(tmp=tmp_path) for k, v in getattr(request, "param", {}).items()}
    with _supervisor(tmp_path, extra) as running:
        yield running


def _bench_processes():
    """``benchmarks/bench_processes.py``, for its count of connections per process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_processes", ROOT / "benchmarks" / "bench_processes.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _user_and_model(root: Path) -> str:
    import pandas as pd

    return str(pd.read_parquet(next(root.iterdir()) / "model/users.parquet")["user_id"].iloc[0])


def test_connections_are_dealt_evenly_and_answers_agree(served) -> None:
    proc, port, root = served
    workers = _children(proc.pid)
    assert len(workers) == 2
    user = _user_and_model(root)
    conns = [Conn(port) for _ in range(6)]
    bodies = [c.get(f"/v1/users/{user}/recommendations?k=5") for c in conns]
    assert all(status == 200 for status, _, _ in bodies)
    assert len({b for _, _, b in bodies}) == 1  # every worker serves the same engine
    # Dealt to the worker with fewest open connections: 3 and 3 (the supervisor keeps none).
    assert _bench_processes().connections_per_process(port, proc.pid) == [3, 3]
    for c in conns:
        c.close()


def test_reload_reforks_workers_and_old_connections_are_closed(served) -> None:
    proc, port, root = served
    before = _children(proc.pid)
    conn = Conn(port)
    v1 = json.loads(conn.get("/v1/model")[2])["version"]
    publish_synthetic_artifact(root / "a2", SyntheticSpec(**{**SPEC.__dict__, "seed": 6}))
    status, _, body = Conn(port).get("/v1/admin/reload", "POST")
    assert status == 200, body
    answer = json.loads(body)
    assert answer["reloaded"] is True and answer["model_version"] != v1
    # The old worker answers this connection's next request, and closes it.
    status, _, body = conn.get("/v1/model")
    assert status == 200 and json.loads(body)["version"] == v1 and conn.closed_by_server
    # New connections reach the new workers only; the old ones exit.
    for _ in range(4):
        assert json.loads(Conn(port).get("/v1/model")[2])["version"] == answer["model_version"]
    deadline = time.monotonic() + 20
    while _children(proc.pid) & before and time.monotonic() < deadline:
        time.sleep(0.1)
    after = _children(proc.pid)
    assert len(after) == 2 and not after & before


def _mapped_rss_kib(pid: int, under: Path) -> int:
    """Resident KiB of the process's mappings of faiss files in ``under`` (/proc/PID/smaps)."""
    total, counting = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
            path = fields[5] if len(fields) >= 6 else ""
            counting = path.startswith(f"{under}/") and path.endswith(".faiss")
        elif counting and fields[0] == "Rss:":
            total += int(fields[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads /proc/PID/smaps")
def test_a_retiring_worker_lets_go_of_the_old_artifacts_index_pages(tmp_path: Path) -> None:
    # Graph indexes, mapped from their files (a pool this small is searched exactly
    # by default, from memory).
    spec = SyntheticSpec(n_pool_tracks=3000, n_artists=120, n_users=200, factors=16, seed=3)
    hnsw = RetrievalConfig(exact_threshold=0)
    with _supervisor(tmp_path, {}, spec, hnsw) as (proc, port, root):
        old_index = root / "a1" / "index"
        old_workers = _children(proc.pid)
        import pandas as pd

        catalogue = pd.read_parquet(root / "a1" / "catalogue/tracks.parquet")
        tracks = catalogue.loc[catalogue["in_pool"], "track_id"].tolist()
        conns = [Conn(port), Conn(port)]  # one per worker
        for i, track in enumerate(tracks[:40]):
            assert conns[i % 2].get(f"/v1/radio/tracks/{track}?size=20")[0] == 200
        touched = {pid: _mapped_rss_kib(pid, old_index) for pid in old_workers}
        assert all(kib > 256 for kib in touched.values()), touched
        publish_synthetic_artifact(root / "a2", SyntheticSpec(**{**SPEC.__dict__, "seed": 6}))
        assert Conn(port).get("/v1/admin/reload", "POST")[0] == 200
        # The old workers stay while their connections are open, and let go of the
        # old mapping as they are retired.
        # (Measured: 880 KiB each, then 28 KiB: the pages at the arrays' unaligned
        # ends and the file's header, which stay.)
        deadline = time.monotonic() + 4
        while True:
            left = {pid: _mapped_rss_kib(pid, old_index) for pid in old_workers}
            if all(kib <= 64 for kib in left.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert all(kib <= 64 for kib in left.values()), (touched, left)
        # A request in flight on the old artifact still gets its answer.
        status, _, _ = conns[0].get(f"/v1/radio/tracks/{tracks[0]}?size=20")
        assert status == 200 and conns[0].closed_by_server
        for c in conns:
            c.close()


def test_a_broken_artifact_is_refused_and_nothing_changes(served) -> None:
    proc, port, root = served
    before = _children(proc.pid)
    v1 = json.loads(Conn(port).get("/v1/model")[2])["version"]
    bad = root / "zz-broken"
    publish_synthetic_artifact(bad, SyntheticSpec(**{**SPEC.__dict__, "seed": 7}))
    (bad / "model/user_factors.npy").write_bytes(b"not an array")
    status, _, body = Conn(port).get("/v1/admin/reload", "POST")
    assert status == 409 and b"artifact_refused" in body
    assert json.loads(Conn(port).get("/v1/model")[2])["version"] == v1
    assert _children(proc.pid) == before


def test_a_takedown_through_one_worker_holds_on_every_worker(served) -> None:
    proc, port, root = served
    user = _user_and_model(root)
    conns = [Conn(port) for _ in range(4)]  # two per worker
    top = json.loads(conns[0].get(f"/v1/users/{user}/recommendations?k=1")[2])["items"][0]
    body = json.dumps({"track_ids": [top["track_id"]]}).encode()
    assert conns[1].get("/v1/admin/takedowns", "POST", body)[0] == 200
    for c in conns:
        answer = json.loads(c.get(f"/v1/users/{user}/recommendations?k=10")[2])
        assert top["track_id"] not in {i["track_id"] for i in answer["items"]}


def test_a_worker_that_dies_is_replaced(served) -> None:
    proc, port, root = served
    first = sorted(_children(proc.pid))
    os.kill(first[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while (first[0] in _children(proc.pid) or len(_children(proc.pid)) < 2) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
    now = _children(proc.pid)
    assert len(now) == 2 and first[0] not in now and first[1] in now
    assert all(Conn(port).get("/readyz")[0] == 200 for _ in range(4))


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            got = key[len(name) :]
            if got.startswith("{"):
                pairs = sorted(p for p in got.strip("{}").split(",") if not p.startswith("pid="))
                got = ",".join(pairs)
            if got == want:
                total += float(value)
    return total


def test_metrics_add_up_every_worker(served) -> None:
    proc, port, root = served
    user = _user_and_model(root)
    conns = [Conn(port) for _ in range(4)]  # two per worker
    for c in conns:
        for _ in range(5):
            assert c.get(f"/v1/users/{user}/recommendations?k=3")[0] == 200
    route = "/v1/users/{user_id}/recommendations"
    for c in conns:  # whichever worker answers, it reports all 20 requests
        text = c.get("/metrics")[2].decode()
        assert _metric(text, "recsys_requests_total", route=route, method="GET", status="200") == 20
        assert _metric(text, "recsys_request_duration_seconds_count", route=route) == 20
        assert _metric(text, "recsys_ready") == 1
    publish_synthetic_artifact(root / "a2", SyntheticSpec(**{**SPEC.__dict__, "seed": 6}))
    assert Conn(port).get("/v1/admin/reload", "POST")[0] == 200
    # The supervisor's reload count, and the exited workers' requests still counted.
    text = Conn(port).get("/metrics")[2].decode()
    assert _metric(text, "recsys_reloads", result="ok") == 1
    assert _metric(text, "recsys_requests_total", route=route, method="GET", status="200") == 20


@pytest.mark.parametrize("served", [{"PROMETHEUS_MULTIPROC_DIR": "{tmp}/metrics"}], indirect=True)
def test_a_metrics_directory_given_is_used_and_kept(served, tmp_path: Path) -> None:
    """``recsys serve`` removes only a metrics directory it made itself."""
    proc, port, root = served
    assert Conn(port).get("/readyz")[0] == 200
    assert list((tmp_path / "metrics").glob("*.db"))  # the workers write there
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=40)
    assert list((tmp_path / "metrics").glob("*.db"))


def test_restart_backoff_doubles_for_young_deaths_and_resets_after_a_stable_worker() -> None:
    from serving.workers import RestartBackoff

    b = RestartBackoff(base_s=0.5, max_s=3.0, stable_s=10.0)
    assert [b.delay(1.0) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert b.delay(10.0) == 0.0 and b.failures == 0  # a worker that served a while
    assert b.delay(0.0) == 0.5


_CRASHING = """
import logging, os, signal, sys, threading
from serving.workers import RestartBackoff, Supervisor

def make_app(link):
    raise RuntimeError("this worker cannot start")

exits = []
sup = Supervisor(host="127.0.0.1", port=0, workers=2, make_app=make_app,
                 on_exit=exits.append, backoff=RestartBackoff(base_s=0.2, max_s=1.0))
threading.Timer(float(sys.argv[1]), os.kill, (os.getpid(), signal.SIGTERM)).start()
logging.disable(logging.CRITICAL)
sup.run()
print(len(exits))
"""


def test_workers_that_cannot_start_are_restarted_with_backoff_not_in_a_loop() -> None:
    # Without the back-off the supervisor forks a new worker as soon as one dies:
    # hundreds in 3 s here. With it: 2 at once, then after 0.2, 0.4, 0.8, 1.0, ... s.
    out = subprocess.run(
        [sys.executable, "-c", _CRASHING, "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    exited = int(out.stdout.split()[-1])
    assert 4 <= exited <= 12, exited


_GC_REPORTING = """
import json, gc, sys
from serving.workers import Supervisor

def make_app(link):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = json.dumps({"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    return app

gc.enable()
Supervisor(host="127.0.0.1", port=int(sys.argv[1]), workers=1, make_app=make_app).run()
"""


def test_workers_collect_garbage_but_not_the_objects_shared_with_the_supervisor() -> None:
    # The supervisor runs with automatic collections off and freezes its objects
    # before forking; a worker must turn collections back on (a cycle made by a
    # request would otherwise never be freed) and keep the inherited objects frozen.
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _GC_REPORTING, str(port)],
        cwd=ROOT,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _, body = Conn(port).get("/")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "did not start"
                time.sleep(0.1)
        assert status == 200
        report = json.loads(body)
        assert report["enabled"] is True
        assert report["frozen"] > 1000
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
