"""Load test of the HTTP service: recommendations and radios under load, with ten reloads.

What it does
------------
1. **Artifact.** Builds (once, cached under ``--work``) a synthetic artifact
   with a ``--tracks``-track pool and ``--factors``-d vectors through
   :func:`recsys.synth.artifact.publish_synthetic_artifact`, i.e. through the
   pipeline's own writer :func:`recsys.artifact.publish.publish_artifact`.
   **The factors are synthetic, not trained**: clustered by artist and style
   with a popularity-driven lognormal norm spread like ALS factors (see
   :mod:`recsys.synth.artifact`); 1M pool tracks come with 50K artists, 100K
   users (about 4.3M seen pairs), a similar-artist graph built by
   :mod:`recsys.graph` and HNSW indexes with the training defaults. Building
   takes several minutes (mostly the two HNSW graphs); later runs reuse it
   (``--skip-build`` insists on it).
2. **Engine.** Starts the real service (``recsys serve``: one uvicorn process,
   or with ``--workers N`` a supervisor and N forked worker processes;
   ``serving.app.create_app``, structured access log on) on a free loopback
   port over a *directory of artifacts*, and drives it with ``--clients``
   concurrent keep-alive connections, closed loop (each sends its next request
   when the answer to the last one is in):
   ``GET /v1/users/{id}/recommendations?k=20`` for known (40 %) and unknown
   (10 %) users, ``GET /v1/radio/artists/{id}?size=50`` (25 %) and
   ``GET /v1/radio/tracks/{id}?size=50`` (25 %), random pool artists and
   tracks. After ``--warmup`` seconds unmeasured, a first phase of
   ``--duration`` seconds measures the engine without reloads; in the second,
   the same load runs while a reloader publishes ``--reloads`` new artifact versions
   into the served directory, one after the other (hard links to the built
   artifact's files under a new manifest: a new ``version``, the same
   checksums), each followed by ``POST /v1/admin/reload``; each reload must
   answer ``reloaded: true`` with the new ``model_version``, and ``/v1/model``
   must then show it. The load runs until the duration has passed *and* the
   reloads are done (at most ``--max-duration`` seconds).
3. **Bare route.** Starts a bare FastAPI app with the same uvicorn settings
   (one process, same HTTP and loop implementation), whose one route returns
   an answer captured from the engine for each kind of request (same JSON
   size: 4.2 KB for recommendations, about 10 KB for a radio of 50; before the
   fifth round it returned the recommendations answer for every request,
   ``--bare-payload recommendations``), and drives it with the same clients,
   in the engine's request mix, for ``--duration`` seconds. The engine's phase
   without reloads and the bare route are measured in ``--slices`` alternating
   slices (engine, bare, engine, bare, ...; the idle server waits meanwhile),
   so that the throughput ratio compares the two on the same machine state:
   on a shared machine, two phases minutes apart moved by tens of percent
   (the bare route measured 682 to 1146 rps in one afternoon).
4. **Each route alone** (``--per-route SECONDS``, off by default). Each route
   of the mix is then driven alone, on the engine and then on the bare route
   with that route's answer, and the server CPU per request of both is
   printed, with their mix-weighted sums: what each route costs above a route
   that only returns its JSON.

A failure is any non-2xx answer, an answer that is not the expected JSON (no
``items``), a connection error or a request slower than ``--timeout``; the run
exits non-zero when there is any, or when a reload did not change the version.

Printed: per route and phase, requests, requests per second, p50/p99/p99.9/max
latency and failures (for the reload phase also over the requests that
neither started nor ended during a reload); engine / bare throughput ratios;
the server's RSS (VmRSS) at steady state (after the first phase), ``--settle``
seconds after the last reload, the highest sampled during the reloads and the
peak (VmHWM); reload times; the CPU seconds used by each server and by the load
generator, and the load average (the machine may be shared). A JSON copy goes to
``--work/results-*.json``.

The load generator is a minimal HTTP/1.1 keep-alive client on asyncio
(requests are fixed GETs, answers carry ``content-length``), not httpx: on a
2-core machine the client shares the CPU with the server, and a light client
leaves more of it to the server under test; the bare route is measured with the
same client. Everything stays on 127.0.0.1 and every phase is bounded in time.

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_serving.py --work /tmp/bench-serving \
        [--tracks 1000000] [--duration 30] [--clients 16] [--reloads 10] [--skip-build]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib
import dataclasses  # noqa: E402
import datetime as dt  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
#: Route mix of the engine phase: (name, share).
ROUTES = (
    ("recommendations (known user)", 0.40),
    ("recommendations (unknown user)", 0.10),
    ("artist radio", 0.25),
    ("track radio", 0.25),
)
BARE = "bare route (same JSON size)"
#: Request kind of each route, for the bare route's captured answers.
KINDS = {
    "recommendations (known user)": "known",
    "recommendations (unknown user)": "unknown",
    "artist radio": "artist",
    "track radio": "track",
}
#: Per request kind: the ids it draws from, the engine's path, its size parameter and value.
REQUESTS = {
    "known": ("known", "/v1/users/{}/recommendations", "k", 20),
    "unknown": ("unknown", "/v1/users/{}/recommendations", "k", 20),
    "artist": ("artists", "/v1/radio/artists/{}", "size", 50),
    "track": ("tracks", "/v1/radio/tracks/{}", "size", 50),
}

logger = logging.getLogger("bench_serving")


# ----------------------------------------------------------------------------- artifact


def _spec(args: argparse.Namespace) -> Any:
    from recsys.synth.artifact import SyntheticSpec

    return SyntheticSpec(n_pool_tracks=args.tracks, factors=args.factors, seed=args.seed)


def ensure_artifact(args: argparse.Namespace) -> Path:
    """The synthetic artifact for ``args``, built under ``--work`` unless already there."""
    from recsys.artifact.store import read_manifest
    from recsys.config import RetrievalConfig
    from recsys.errors import ArtifactError
    from recsys.synth.artifact import publish_synthetic_artifact

    spec = _spec(args)
    storage = getattr(args, "storage", None) or RetrievalConfig().hnsw_storage
    retrieval = RetrievalConfig(hnsw_storage=storage)
    if getattr(args, "answer_max_users", None) is not None:
        retrieval = dataclasses.replace(retrieval, answer_max_users=args.answer_max_users)
    # Artifacts from before the float16 default (storage float32) keep their old name.
    suffix = "" if storage == "float32" else f"-{storage}"
    base = Path(args.work) / f"base-{spec.n_pool_tracks}-d{spec.factors}-s{spec.seed}{suffix}"
    try:
        manifest = read_manifest(base, verify=False)
        same_spec = manifest.get("data", {}).get("spec") == dataclasses.asdict(spec)
        built_for = manifest.get("config", {}).get("retrieval")
        if same_spec and built_for == dataclasses.asdict(retrieval):
            logger.info("reusing artifact %s (%s)", base, manifest["version"])
            return base
        logger.info(
            "artifact at %s was built for another spec or retrieval config: rebuilding", base
        )
    except ArtifactError:
        pass
    if args.skip_build:
        raise SystemExit(f"--skip-build: no artifact for this spec at {base}")
    t0 = time.perf_counter()
    logger.info("building a synthetic artifact with a %d-track pool at %s ...", args.tracks, base)
    publish_synthetic_artifact(base, spec, retrieval=retrieval)
    logger.info("built in %.0fs", time.perf_counter() - t0)
    return base


def republish(base: Path, root: Path) -> str:
    """Publish a new version of ``base`` into the directory of artifacts ``root``.

    The files are hard links to ``base``'s (same bytes, same checksums); only
    the manifest is new: a new ``version`` and ``created_at``. Atomic, like any
    publication.
    """
    from recsys.artifact.store import MANIFEST, atomic_directory, new_version, read_manifest

    manifest = read_manifest(base, verify=False)
    created = dt.datetime.now(dt.UTC)
    version = new_version(created)
    with atomic_directory(root / version) as tmp:
        for rel in manifest["files"]:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            os.link(base / rel, tmp / rel)
        manifest = {
            **manifest,
            "version": version,
            "created_at": created.isoformat(),
            "data": {**manifest["data"], "republished_from": manifest["version"]},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    return version


def sample_ids(base: Path, n: int, seed: int) -> dict[str, list[str]]:
    """Random known users, unknown users, pool artists and pool tracks for the requests."""
    rng = np.random.default_rng(seed)
    users = pd.read_parquet(base / "model/users.parquet")["user_id"].to_numpy(object)
    tracks = pd.read_parquet(base / "catalogue/tracks.parquet", columns=["track_id", "artist_id"])
    pool = pd.read_parquet(base / "catalogue/tracks.parquet", columns=["in_pool"])["in_pool"]
    pool_tracks = tracks.loc[pool.to_numpy(bool)]
    artists = pool_tracks["artist_id"].unique()
    return {
        "known": [str(u) for u in rng.choice(users, n)],
        "unknown": [f"nobody{i:06d}" for i in range(n)],
        "artists": [str(a) for a in rng.choice(artists, n)],
        "tracks": [str(t) for t in rng.choice(pool_tracks["track_id"].to_numpy(object), n)],
    }


# ----------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    """A server subprocess on a loopback port, its log in a file."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, path: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as s:
                    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"server not ready after {timeout_s}s; see {self.log_path}")

    def status(self) -> dict[str, int]:
        """Memory (KiB) and CPU ticks of the server's processes (``--workers``: all of them).

        ``VmRSS``, ``RssAnon``, ``RssFile``, ``AnonHugePages`` and ``Pss`` are
        summed over the process and its children; ``VmHWM`` is the first
        process's. Summed RSS counts a page shared by several processes (forked
        workers, mapped indexes) once per process; ``Pss`` splits it between
        them, so its sum is the memory the server holds. CPU ticks include
        children already exited and waited for.
        """
        out = dict.fromkeys(("VmRSS", "RssAnon", "RssFile", "AnonHugePages", "Pss", "cpu_ticks"), 0)
        pids = _process_tree(self.proc.pid)
        for pid in pids:
            try:
                with open(f"/proc/{pid}/status") as fh:
                    for line in fh:
                        key = line.split(":")[0]
                        if key in ("VmRSS", "RssAnon", "RssFile"):
                            out[key] += int(line.split()[1])
                        elif key == "VmHWM" and pid == self.proc.pid:
                            out[key] = int(line.split()[1])
                with open(f"/proc/{pid}/smaps_rollup") as fh:
                    for line in fh:
                        key = line.split(":")[0]
                        if key in ("AnonHugePages", "Pss"):
                            out[key] += int(line.split()[1])
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue  # a worker that just exited
            # utime + stime, and for the first process its waited-for children's too.
            out["cpu_ticks"] += int(fields[11]) + int(fields[12])
            if pid == self.proc.pid:
                out["cpu_ticks"] += int(fields[13]) + int(fields[14])
        out["processes"] = len(pids)
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux ``/proc/PID/task/PID/children``)."""
    pids, i = [pid], 0
    while i < len(pids):
        p = pids[i]
        i += 1
        with contextlib.suppress(OSError):
            pids.extend(int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split())
    return pids


def serve_bare(payload_file: str, port: int, workers: int = 1) -> None:
    """Run the bare app: one route returning a captured answer (subprocess mode).

    ``payload_file`` holds one captured engine answer per request kind
    (:data:`KINDS`); the route returns the one of the kind in its path, so
    each bare answer has the size of the engine's answer it stands for.
    """
    import uvicorn
    from fastapi import FastAPI

    payloads = json.loads(Path(payload_file).read_text())
    app = FastAPI(title="bare")

    @app.get("/bare/{kind}/{item_id}")
    def bare(kind: str, item_id: str, k: int = 20, size: int = 50) -> dict[str, Any]:
        return {**payloads[kind], "user_id": item_id}

    @app.get("/readyz")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    # The settings of `recsys serve` (training/cli.py): default loop and HTTP; with
    # --workers, the same supervisor dealing connections to forked workers; one
    # process freezes its heap out of full collections as the engine's does
    # (RECSYS_GC_FREEZE, serving.holder.freeze_long_lived).
    if workers > 1:
        from serving.workers import Supervisor

        Supervisor(host=HOST, port=port, workers=workers, make_app=lambda link: app).run()
    else:
        # The service's own reading of RECSYS_GC_FREEZE; the freeze itself is
        # serving.holder.freeze_long_lived's two calls, repeated here because
        # importing serving.holder would load the engine's libraries into the bare
        # process (its memory and heap are part of the comparison).
        from serving.settings import ServiceSettings

        if ServiceSettings().gc_freeze:
            gc.collect()
            gc.freeze()
        uvicorn.run(app, host=HOST, port=port, log_config=None, access_log=False)


def capture_payloads(
    port: int, ids: dict[str, list[str]], mode: str
) -> tuple[dict[str, Any], dict[str, int]]:
    """One engine answer per request kind, for the bare route to return (parsed JSON).

    ``mode`` ``"per-route"``: each kind's own answer (recommendations 4.2 KB,
    radios of 50 about 10 KB on the 1M pool). ``"recommendations"``: the
    known user's recommendations for every kind (the baseline before the fifth
    round, which understated the radios' answers).

    Returns
    -------
    payloads
        Kind -> the answer the bare route returns for it.
    engine_bytes
        Kind -> size of the engine's captured answer.
    """
    out: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    for route, _ in ROUTES:
        path = next(p for r, p, _ in _requests(ids, random.Random(0), only=route))
        status, body = asyncio.run(_get(port, path))
        if status != 200:
            raise RuntimeError(f"capturing {path}: status {status}")
        out[KINDS[route]] = json.loads(body)
        sizes[KINDS[route]] = len(body)
    if mode == "recommendations":
        out = dict.fromkeys(out, out["known"])
    elif mode != "per-route":
        raise ValueError(f"unknown bare payload mode {mode!r}")
    return out, sizes


# ----------------------------------------------------------------------------- load


class Connection:
    """One HTTP/1.1 keep-alive connection (answers must carry ``content-length``)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: str = "") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        body = "Content-Length: 0\r\n" if method == "POST" else ""
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n{headers}{body}\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = None
        closing = False
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
            elif line[:11].lower() == b"connection:" and b"close" in line[11:].lower():
                closing = True  # HTTP/1.1: the server closes after this answer
        if length is None:
            raise ValueError("answer without content-length")
        body = await self.reader.readexactly(length)
        if closing:
            self.close()  # the next request opens a new connection
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclasses.dataclass
class Record:
    route: str
    start: float
    end: float
    ok: bool
    version: str | None


@dataclasses.dataclass
class Phase:
    """What one load phase observed."""

    records: list[Record] = dataclasses.field(default_factory=list)
    errors: dict[str, int] = dataclasses.field(default_factory=dict)
    reload_windows: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    reloads: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    rss_samples: list[tuple[float, int]] = dataclasses.field(default_factory=list)
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0

    def cpu_ms_per_request(self, who: str = "server") -> float:
        """CPU milliseconds per request of the ``"server"`` or the ``"client"``."""
        return getattr(self, f"{who}_cpu_s") * 1000 / max(1, len(self.records))


def _picks(ids: dict[str, list[str]], rng: random.Random, only: str | None = None):
    """``(route, kind, id, param, k)`` in the :data:`ROUTES` mix (or ``only`` that route)."""
    names = [r for r, _ in ROUTES] if only is None else [only]
    weights = [w for _, w in ROUTES] if only is None else [1.0]
    while True:
        route = rng.choices(names, weights)[0]
        kind = KINDS[route]
        pool, _, param, k = REQUESTS[kind]
        yield route, kind, rng.choice(ids[pool]), param, k


def _requests(ids: dict[str, list[str]], rng: random.Random, only: str | None = None):
    """The engine's request stream: ``(route, path, k)``."""
    for route, kind, item, param, k in _picks(ids, rng, only):
        yield route, f"{REQUESTS[kind][1].format(item)}?{param}={k}", k


def _bare_requests(ids: dict[str, list[str]], rng: random.Random, only: str | None = None):
    """The bare route's stream: the engine's mix (or ``only`` that route's kind), each
    request for a captured answer of its kind."""
    for _, kind, item, param, k in _picks(ids, rng, only):
        yield BARE, f"/bare/{kind}/{item}?{param}={k}", k


async def client(
    port: int,
    requests: Any,
    stop: asyncio.Event,
    phase: Phase,
    timeout_s: float,
) -> None:
    """One closed-loop client: a request, its answer, the next request."""
    conn = Connection(port)
    try:
        while not stop.is_set():
            route, path, want = next(requests)
            t0 = time.perf_counter()
            ok, version = False, None
            try:
                async with asyncio.timeout(timeout_s):
                    status, body = await conn.request("GET", path)
                if 200 <= status < 300:
                    answer = json.loads(body)
                    ok = isinstance(answer.get("items"), list) and len(answer["items"]) > 0
                    version = answer.get("model_version")
                    if not ok:
                        phase.errors["empty answer"] = phase.errors.get("empty answer", 0) + 1
                    elif len(answer["items"]) < want:
                        phase.errors["short answer (not a failure)"] = (
                            phase.errors.get("short answer (not a failure)", 0) + 1
                        )
                else:
                    key = f"HTTP {status}"
                    phase.errors[key] = phase.errors.get(key, 0) + 1
            except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError) as exc:
                key = type(exc).__name__
                phase.errors[key] = phase.errors.get(key, 0) + 1
                conn.close()
            phase.records.append(Record(route, t0, time.perf_counter(), ok, version))
    finally:
        conn.close()


async def reloader(
    server: Server,
    base: Path,
    root: Path,
    token: str,
    n: int,
    duration_s: float,
    phase: Phase,
    t_start: float,
) -> None:
    """Publish a new version and reload it ``n`` times, spread over the duration."""
    conn = Connection(server.port)
    auth = f"Authorization: Bearer {token}\r\n"
    previous = None
    try:
        status, body = await conn.request("GET", "/v1/model")
        previous = json.loads(body)["version"]
        for i in range(n):
            await asyncio.sleep(
                max(0.0, t_start + (i + 0.5) * duration_s / n - time.perf_counter())
            )
            version = await asyncio.to_thread(republish, base, root)
            t0 = time.perf_counter()
            try:
                status, body = await conn.request("POST", "/v1/admin/reload", auth)
                t1 = time.perf_counter()
                answer = json.loads(body)
                _, model = await conn.request("GET", "/v1/model")
                served = json.loads(model)["version"]
            except (OSError, ValueError, KeyError, asyncio.IncompleteReadError) as exc:
                t1 = time.perf_counter()
                conn.close()
                status, answer, served = -1, {"error": repr(exc)}, None
            phase.reload_windows.append((t0, t1))
            ok = (
                status == 200
                and answer.get("reloaded") is True
                and answer.get("model_version") == version == served
                and version != previous
            )
            phase.reloads.append(
                {"version": version, "seconds": round(t1 - t0, 3), "ok": ok, "status": status}
            )
            logger.info("reload %d/%d: %s in %.1fs (%s)", i + 1, n, version, t1 - t0, ok)
            # Keep the served directory small: the old versions are hard links anyway.
            for child in root.iterdir():
                if child.name not in (version, previous) and child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
            previous = version
    finally:
        conn.close()


async def sampler(server: Server, stop: asyncio.Event, phase: Phase, key: str = "VmRSS") -> None:
    """Memory every 0.2 s: ``VmRSS``, or with several processes the summed ``Pss``."""
    while not stop.is_set():
        phase.rss_samples.append((time.perf_counter(), server.status()[key]))
        await asyncio.sleep(0.2)


async def run_phase(
    server: Server,
    requests: Any,
    *,
    clients: int,
    duration_s: float,
    max_duration_s: float,
    timeout_s: float,
    reload: tuple[Path, Path, str, int] | None = None,
    ports: list[int] | None = None,
    memory_key: str = "VmRSS",
) -> Phase:
    """Drive ``server`` with ``clients`` connections; reload meanwhile when asked.

    ``ports`` (default: the server's) are dealt to the connections round-robin,
    for a group of servers (``bench_processes.py``) whose ``status`` sums theirs.
    """
    ports = ports or [server.port]
    phase = Phase()
    stop = asyncio.Event()
    tick = os.sysconf("SC_CLK_TCK")
    cpu0, server0 = time.process_time(), server.status()["cpu_ticks"]
    t0 = time.perf_counter()
    tasks = [
        asyncio.create_task(client(ports[i % len(ports)], requests, stop, phase, timeout_s))
        for i in range(clients)
    ]
    tasks.append(asyncio.create_task(sampler(server, stop, phase, memory_key)))
    reloading = None
    if reload is not None:
        base, root, token, n = reload
        reloading = asyncio.create_task(
            reloader(server, base, root, token, n, duration_s, phase, t0)
        )
    deadline = t0 + max_duration_s
    await asyncio.sleep(duration_s)
    if reloading is not None:
        try:
            await asyncio.wait_for(reloading, max(0.0, deadline - time.perf_counter()))
        except TimeoutError:
            logger.error("reloads not finished within --max-duration")
    stop.set()
    await asyncio.gather(*tasks)
    phase.elapsed_s = time.perf_counter() - t0
    phase.client_cpu_s = time.process_time() - cpu0
    phase.server_cpu_s = (server.status()["cpu_ticks"] - server0) / tick
    return phase


# ----------------------------------------------------------------------------- report


def _stats(recs: list[Record], elapsed: float) -> dict[str, Any]:
    lat = np.array([r.end - r.start for r in recs]) * 1000.0
    fails = sum(not r.ok for r in recs)
    if len(lat) == 0:
        return {"requests": 0, "rps": 0.0, "failures": fails}
    return {
        "requests": len(recs),
        "rps": round(len(recs) / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "p999_ms": round(float(np.percentile(lat, 99.9)), 2),
        "max_ms": round(float(lat.max()), 2),
        "failures": fails,
    }


def summarise(phase: Phase, names: list[str], *, reload_margin_s: float = 0.0) -> dict[str, Any]:
    """Per-route statistics: all requests, and those clear of every reload window."""
    windows = phase.reload_windows

    def clear(r: Record) -> bool:
        return all(
            r.end < lo - reload_margin_s or r.start > hi + reload_margin_s for lo, hi in windows
        )

    out: dict[str, Any] = {}
    quiet = [r for r in phase.records if clear(r)]
    quiet_s = phase.elapsed_s - sum(hi - lo for lo, hi in windows)
    for name in [*names, "all"]:
        sel = [r for r in phase.records if name in ("all", r.route)]
        sel_q = [r for r in quiet if name in ("all", r.route)]
        out[name] = {"all": _stats(sel, phase.elapsed_s)}
        if windows:
            out[name]["outside_reloads"] = _stats(sel_q, max(quiet_s, 1e-9))
    return out


def print_table(title: str, stats: dict[str, Any], key: str = "all") -> None:
    print(f"\n{title}")
    print(
        f"{'route':34s} {'requests':>9s} {'rps':>8s} {'p50 ms':>8s} {'p99 ms':>8s} "
        f"{'p99.9 ms':>9s} {'max ms':>8s} {'failures':>9s}"
    )
    for name, s in stats.items():
        s = s.get(key)
        if not s:
            continue
        print(
            f"{name:34s} {s['requests']:9d} {s['rps']:8.1f} {s.get('p50_ms', 0):8.2f} "
            f"{s.get('p99_ms', 0):8.2f} {s.get('p999_ms', 0):9.2f} {s.get('max_ms', 0):8.2f} "
            f"{s['failures']:9d}"
        )


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/recsys-bench-serving", help="cache and logs")
    p.add_argument("--tracks", type=int, default=1_000_000, help="pool tracks")
    p.add_argument("--factors", type=int, default=64)
    p.add_argument(
        "--storage",
        choices=["float16", "float32"],
        help="vectors of the HNSW indexes (default: the training default, float16)",
    )
    p.add_argument(
        "--answer-max-users",
        type=int,
        help="users whose answer the artifact stores (default: the training default, "
        "[retrieval] answer_max_users); the requests draw users uniformly, so only a cap "
        "at or above the artifact's users (100,000) answers every known user from storage",
    )
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load per phase")
    p.add_argument("--max-duration", type=float, default=600.0, help="hard cap of a phase")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--reloads", type=int, default=10)
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (s)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of unmeasured load")
    p.add_argument("--settle", type=float, default=5.0, help="seconds before the last RSS")
    p.add_argument("--skip-build", action="store_true", help="use the cached artifact only")
    p.add_argument("--no-bare", action="store_true", help="skip the bare route (when iterating)")
    p.add_argument(
        "--bare-payload",
        choices=("per-route", "recommendations"),
        default="per-route",
        help="the bare route returns each route's captured answer (default), or the "
        "recommendations answer for every request (the baseline before the fifth round)",
    )
    p.add_argument(
        "--slices",
        type=int,
        default=3,
        help="the no-reload phase and the bare route alternate in this many slices",
    )
    p.add_argument(
        "--per-route",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="after the alternating slices, drive each route alone for SECONDS on the "
        "engine and then on the bare route, and print the server CPU per request of each "
        "(0, the default: skipped; also skipped with --no-bare)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--huge-pages",
        action="store_true",
        help="serve with RECSYS_HUGE_PAGES=true (glibc's huge-page tunable), for comparison",
    )
    p.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="serve with RECSYS_GC_FREEZE=false (full collections scan the whole heap), "
        "engine and bare route alike, for comparison",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes of the engine and of the bare route alike (recsys serve "
        "--workers); above 1, memory is the processes' summed PSS, sampled every 0.2 s",
    )
    p.add_argument("--serve-bare", metavar="PAYLOAD", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_bare:
        serve_bare(args.serve_bare, args.port, args.workers)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("faiss").setLevel(logging.WARNING)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = ensure_artifact(args)
    root = work / "served"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    first = republish(base, root)
    ids = sample_ids(base, 10_000, args.seed)
    token = secrets.token_hex(16)
    state = work / "state.sqlite"
    state.unlink(missing_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")},
        "OPENBLAS_NUM_THREADS": "1",
        "RECSYS_ADMIN_TOKEN": token,
        "RECSYS_STATE_PATH": str(state),
    }
    env["RECSYS_HUGE_PAGES"] = "true" if args.huge_pages else "false"
    env["RECSYS_GC_FREEZE"] = "false" if args.no_gc_freeze else "true"
    result: dict[str, Any] = {
        "args": {k: v for k, v in vars(args).items() if k not in ("serve_bare", "port")},
        "artifact": str(base),
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
        "cpus": os.cpu_count(),
    }

    # ---- engine and bare route -----------------------------------------------------------
    port = free_port()
    argv_engine = [sys.executable, "-m", "training.cli", "serve", "--artifact", str(root)]
    argv_engine += ["--workers", str(args.workers)]
    engine = Server([*argv_engine, "--port", str(port)], env, port, work / "engine.log")
    bare = None
    try:
        t0 = time.perf_counter()
        engine.wait_ready("/readyz", timeout_s=600)
        result["engine_start_s"] = round(time.perf_counter() - t0, 1)
        logger.info("engine ready on port %d in %.1fs (%s)", port, result["engine_start_s"], first)
        rng = random.Random(args.seed)

        def drive(server: Server, requests: Any, duration_s: float, reload=None) -> Phase:
            """One load phase (and reloads when given)."""
            return asyncio.run(
                run_phase(
                    server,
                    requests,
                    clients=args.clients,
                    duration_s=duration_s,
                    max_duration_s=args.max_duration if reload else duration_s + 60,
                    timeout_s=args.timeout,
                    reload=reload,
                    memory_key="VmRSS" if args.workers == 1 else "Pss",
                )
            )

        engine_requests = _requests(ids, rng)
        warm = drive(engine, engine_requests, args.warmup)
        logger.info("warm-up: %d requests", len(warm.records))
        payloads, result["answer_bytes"] = capture_payloads(port, ids, args.bare_payload)
        payload_file = work / "bare_payload.json"
        payload_file.write_text(json.dumps(payloads))
        slices = max(1, args.slices)
        if args.no_bare:
            steady_phase = drive(engine, engine_requests, args.duration)
            bare_phase, bare_status = Phase(elapsed_s=1.0), {"VmRSS": 0, "Pss": 0}
            result["bare_answer_bytes"] = {}
        else:
            # The bare route is measured in slices alternating with the engine's, so that
            # both see the same machine (a shared one drifts by tens of percent in minutes).
            bare, bare_requests = start_bare(args, env, work, payload_file, ids, result)
            drive(bare, bare_requests, args.warmup)
            engine_slices, bare_slices = [], []
            for _ in range(slices):
                engine_slices.append(drive(engine, engine_requests, args.duration / slices))
                bare_slices.append(drive(bare, bare_requests, args.duration / slices))
            steady_phase, bare_phase = merge(engine_slices), merge(bare_slices)
            result["slice_ratios"] = [
                round(len(e.records) / e.elapsed_s / max(len(b.records) / b.elapsed_s, 1e-9), 3)
                for e, b in zip(engine_slices, bare_slices, strict=True)
            ]
            if args.per_route > 0:
                result["per_route"] = per_route_costs(args, ids, drive, engine, bare)
            bare_status = bare.status()
            bare.stop()
            bare = None
        steady = engine.status()
        reload = (base, root, token, args.reloads)
        reload_phase = drive(engine, engine_requests, args.duration, reload)
        time.sleep(args.settle)  # what the server keeps once the last reload has settled
        after = engine.status()
    finally:
        engine.stop()
        if bare is not None:
            bare.stop()

    phases = {"steady": steady_phase, "reloads": reload_phase, "bare": bare_phase}
    report(args, result, phases, {"steady": steady, "after": after, "bare": bare_status})
    shutil.rmtree(root, ignore_errors=True)
    failures = sum(result["routes"][k]["all"]["all"]["failures"] for k in phases)
    reloads_ok = sum(r["ok"] for r in reload_phase.reloads)
    return 1 if failures or reloads_ok != args.reloads else 0


def per_route_costs(
    args: argparse.Namespace, ids: dict[str, list[str]], drive: Any, engine: Server, bare: Server
) -> dict[str, dict[str, dict[str, float]]]:
    """Each route of the mix alone, engine then bare route, ``--per-route`` seconds each.

    What one request of each route costs the server under the same load (16
    closed-loop clients), next to the bare route returning that route's answer:
    the mix's throughput ratio is set by these costs, weighted by the mix.

    Returns
    -------
    dict
        Route -> ``{"engine": stats, "bare": stats}``, each with ``rps``,
        ``cpu_ms`` (server CPU per request), ``client_cpu_ms``, ``p50_ms``,
        ``p99_ms`` and ``failures``.
    """
    rng = random.Random(args.seed + 2)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for route, _ in ROUTES:
        engine_phase = drive(engine, _requests(ids, rng, only=route), args.per_route)
        bare_phase = drive(bare, _bare_requests(ids, rng, only=route), args.per_route)
        out[route] = {}
        for who, ph in (("engine", engine_phase), ("bare", bare_phase)):
            stats = _stats(ph.records, ph.elapsed_s)
            out[route][who] = {
                "rps": stats["rps"],
                "cpu_ms": round(ph.cpu_ms_per_request("server"), 3),
                "client_cpu_ms": round(ph.cpu_ms_per_request("client"), 3),
                "p50_ms": stats.get("p50_ms", 0.0),
                "p99_ms": stats.get("p99_ms", 0.0),
                "failures": stats["failures"],
            }
        logger.info(
            "%s alone: engine %.2f ms, bare %.2f ms of server CPU per request",
            route,
            out[route]["engine"]["cpu_ms"],
            out[route]["bare"]["cpu_ms"],
        )
    return out


def print_per_route(per_route: dict[str, dict[str, dict[str, float]]], seconds: float) -> None:
    """The table of :func:`per_route_costs`, and its costs weighted by the mix."""
    print(f"\neach route alone ({seconds:.0f}s engine, then {seconds:.0f}s bare route)")
    print(
        f"{'route':34s} {'share':>6s} {'rps':>7s} {'bare rps':>9s} {'CPU ms':>7s} "
        f"{'bare CPU':>9s} {'extra ms':>9s} {'p99 ms':>7s} {'bare p99':>9s}"
    )
    mix = {"engine": 0.0, "bare": 0.0}
    for route, share in ROUTES:
        e, b = per_route[route]["engine"], per_route[route]["bare"]
        mix["engine"] += share * e["cpu_ms"]
        mix["bare"] += share * b["cpu_ms"]
        print(
            f"{route:34s} {share:6.2f} {e['rps']:7.1f} {b['rps']:9.1f} {e['cpu_ms']:7.2f} "
            f"{b['cpu_ms']:9.2f} {e['cpu_ms'] - b['cpu_ms']:9.2f} {e['p99_ms']:7.1f} "
            f"{b['p99_ms']:9.1f}"
        )
    print(
        f"weighted by the mix: engine {mix['engine']:.2f} ms, bare {mix['bare']:.2f} ms of "
        f"server CPU per request (bare / engine {mix['bare'] / max(mix['engine'], 1e-9):.2f}; "
        f"half the bare route's throughput needs the engine at or under "
        f"{2 * mix['bare']:.2f} ms where the server's CPU is the limit)"
    )


def merge(phases: list[Phase]) -> Phase:
    """One phase of several slices of the same load (records, time and CPU added up)."""
    out = Phase()
    for ph in phases:
        out.records.extend(ph.records)
        for k, v in ph.errors.items():
            out.errors[k] = out.errors.get(k, 0) + v
        out.rss_samples.extend(ph.rss_samples)
        out.elapsed_s += ph.elapsed_s
        out.client_cpu_s += ph.client_cpu_s
        out.server_cpu_s += ph.server_cpu_s
    return out


def start_bare(
    args: argparse.Namespace,
    env: dict[str, str],
    work: Path,
    payload_file: Path,
    ids: dict[str, list[str]],
    result: dict[str, Any],
) -> tuple[Server, Any]:
    """The bare route's server (ready) and its request stream."""
    port = free_port()
    argv_bare = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(payload_file)]
    argv_bare += ["--workers", str(args.workers)]
    bare = Server([*argv_bare, "--port", str(port)], env, port, work / "bare.log")
    try:
        bare.wait_ready("/readyz", timeout_s=60)
        sizes = {}
        for kind in sorted(set(KINDS.values())):
            status, body = asyncio.run(_get(port, f"/bare/{kind}/u1"))
            sizes[kind] = len(body)
    except BaseException:
        bare.stop()
        raise
    result["bare_answer_bytes"] = sizes
    return bare, _bare_requests(ids, random.Random(args.seed + 1))


def report(
    args: argparse.Namespace,
    result: dict[str, Any],
    phases: dict[str, Phase],
    status: dict[str, dict[str, int]],
) -> None:
    """Print the tables and write the JSON results.

    Parameters
    ----------
    phases
        ``steady`` (engine, no reload), ``reloads`` (engine while reloading)
        and ``bare`` (the bare route).
    status
        Server status (:meth:`Server.status`) ``steady`` (engine, before the
        reloads), ``after`` (engine, once the reloads settled) and ``bare``.
    """
    names = [r for r, _ in ROUTES]
    steady, reloading, bare = phases["steady"], phases["reloads"], phases["bare"]
    routes = {k: summarise(ph, [BARE] if k == "bare" else names) for k, ph in phases.items()}
    result["routes"] = routes
    result["errors"] = {k: ph.errors for k, ph in phases.items()}
    result["elapsed_s"] = {k: round(ph.elapsed_s, 1) for k, ph in phases.items()}
    bare_rps = max(routes["bare"]["all"]["all"]["rps"], 1e-9)
    ratios = {k: round(routes[k]["all"]["all"]["rps"] / bare_rps, 3) for k in ("steady", "reloads")}
    key = "VmRSS" if args.workers == 1 else "Pss"
    all_samples = [kib for ph in phases.values() for _, kib in ph.rss_samples]
    reload_rss = [
        kib
        for t, kib in reloading.rss_samples
        if any(lo <= t <= hi for lo, hi in reloading.reload_windows)
    ]
    reloads_ok = sum(r["ok"] for r in reloading.reloads)
    versions = {r.version for r in reloading.records if r.version}
    result.update(
        {
            "ratio_rps": ratios,
            "reloads": reloading.reloads,
            "versions_answered": len(versions),
            # One process: its resident set (VmRSS; VmHWM its peak). Several: their
            # summed proportional set (Pss), the peak the highest 0.2 s sample.
            "memory": "VmRSS" if args.workers == 1 else "summed Pss",
            "processes": status["steady"].get("processes", 1),
            "rss_mib": {
                "steady": mib(status["steady"][key]),
                "after_reloads": mib(status["after"][key]),
                "max_sampled_during_reloads": mib(max(reload_rss)) if reload_rss else None,
                "peak_vmhwm": mib(status["after"]["VmHWM"]) if args.workers == 1 else None,
                "max_sampled": mib(max(all_samples)) if all_samples else None,
                "steady_pss": mib(status["steady"].get("Pss", 0)),
                "steady_rss": mib(status["steady"]["VmRSS"]),  # summed over the processes
                "bare": mib(status["bare"].get(key, 0)),
                # Of the steady RSS, what sits on transparent huge pages (with
                # `--huge-pages`, glibc's tunable; see training/cli.py).
                "steady_huge_pages": mib(status["steady"].get("AnonHugePages", 0)),
                # Of the steady RSS, anonymous memory and pages of mapped files (the
                # faiss indexes and user factors are mapped: recsys.artifact.loaded).
                "steady_anon": mib(status["steady"].get("RssAnon", 0)),
                "steady_file": mib(status["steady"].get("RssFile", 0)),
            },
            "cpu_ms_per_request": {
                k: round(ph.cpu_ms_per_request(), 2) for k, ph in phases.items()
            },
            "cpu_s": {
                f"{k}_{who}": round(getattr(ph, f"{who}_cpu_s"), 1)
                for k, ph in phases.items()
                for who in ("server", "client")
            },
            "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
        }
    )
    print(
        f"\npool {args.tracks} tracks x {args.factors} factors; {args.clients} clients; "
        f"answers {result['answer_bytes']} B (bare {result['bare_answer_bytes']} B); "
        f"cpus {os.cpu_count()}; load average before {' '.join(result['loadavg_before'])}, "
        f"after {' '.join(result['loadavg_after'])}"
    )
    print_table(f"engine, {steady.elapsed_s:.1f}s without reloads", routes["steady"])
    print_table(
        f"engine, {reloading.elapsed_s:.1f}s with {len(reloading.reloads)} reloads (all requests)",
        routes["reloads"],
    )
    if reloading.reload_windows:
        print_table(
            "engine, requests of that phase clear of every reload",
            routes["reloads"],
            "outside_reloads",
        )
    print_table(f"bare FastAPI route, {bare.elapsed_s:.1f}s", routes["bare"])
    print(
        f"\nthroughput ratio engine / bare: {ratios['steady']:.2f} without reloads, "
        f"{ratios['reloads']:.2f} while reloading"
    )
    if result.get("slice_ratios"):
        print(f"  per alternating slice (engine, then bare): {result['slice_ratios']}")
    secs = [r["seconds"] for r in reloading.reloads]
    print(
        f"reloads: {reloads_ok}/{args.reloads} changed model_version as expected; "
        f"{len(versions)} versions answered; reload time "
        f"p50 {np.median(secs) if secs else float('nan'):.1f}s, "
        f"max {max(secs) if secs else float('nan'):.1f}s"
    )
    r = result["rss_mib"]
    peak = (
        f"peak (VmHWM) {r['peak_vmhwm']} MiB"
        if args.workers == 1
        else f"highest sample {r['max_sampled']} MiB"
    )
    print(
        f"server {'RSS' if args.workers == 1 else 'memory, Pss summed over'} "
        f"{'' if args.workers == 1 else str(result['processes']) + ' processes, '}"
        f"{r['steady']} MiB steady (before reloads), {r['after_reloads']} MiB "
        f"{args.settle:.0f}s after the last reload, max sampled during reloads "
        f"{r['max_sampled_during_reloads']} MiB, {peak}; "
        f"bare server {r['bare']} MiB; at steady state {r['steady_anon']} MiB anonymous and "
        f"{r['steady_file']} MiB of mapped files (RSS), {r['steady_huge_pages']} MiB on huge pages"
    )
    print(f"server CPU ms per request: {result['cpu_ms_per_request']}")
    if result.get("per_route"):
        print_per_route(result["per_route"], args.per_route)
    print(
        "CPU seconds (server, client): "
        + "; ".join(
            f"{k} {ph.server_cpu_s:.1f}, {ph.client_cpu_s:.1f} over {ph.elapsed_s:.0f}s"
            for k, ph in phases.items()
        )
    )
    errors = {k: ph.errors for k, ph in phases.items() if ph.errors}
    if errors:
        print(f"errors and notes: {errors}")
    failures = {k: routes[k]["all"]["all"]["failures"] for k in phases}
    print(f"failures: {failures}")
    out = Path(args.work) / f"results-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"results: {out}")


async def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = Connection(port)
    try:
        return await conn.request("GET", path)
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
