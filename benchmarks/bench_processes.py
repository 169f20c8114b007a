"""What would several server processes give? Independent servers, connections split evenly.

Question
--------
``recsys serve`` is one process: under the load of ``bench_serving.py`` (16
closed-loop clients, 1M-track pool) its event loop saturates one core while the
machine's other core is mostly idle. Before building a multi-process server
(workers sharing one copy of the artifact, a rolling reload), this measures
what such a server could give at best: ``N`` *independent* ``recsys serve``
processes on ``N`` ports, each with its own copy of the artifact, and the
clients' connections dealt round-robin over them (perfectly balanced). The
same is done for the bare FastAPI route of ``bench_serving.py`` (same JSON
size), so that the throughput ratio can be read at equal process counts.

Memory is **not** representative: every process holds a full copy of the
artifact (a real multi-process server would share it); the RSS printed is
the sum over the processes.

Also measured (``--uvicorn-workers``): uvicorn's own ``workers=N`` mode, where
the processes share one listening socket and the kernel decides which process
accepts each connection; the connections per process are counted from
``/proc``.

Printed: per configuration, requests per second, p50/p99 latency, server CPU
per request, client CPU, summed RSS; the engine/bare throughput ratios at equal
and at unequal process counts. The configurations are run ``--repeats`` times
in alternation (the machine is noisy); a JSON copy goes to
``--work/processes-*.json``.

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_processes.py --work /tmp/bench-serving \
        [--tracks 1000000] [--processes 1 2] [--duration 20] [--repeats 2] [--uvicorn-workers]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving as bs  # noqa: E402

logger = logging.getLogger("bench_processes")

#: uvicorn's multi-process mode, run from a file so that its spawned workers can import it.
UVICORN_WORKERS = """\
import sys
import uvicorn

if __name__ == "__main__":
    uvicorn.run("serving.app:create_app", factory=True, host=sys.argv[1], port=int(sys.argv[2]),
                workers=int(sys.argv[3]), log_config=None, access_log=False)
"""


def tree_status(pid: int) -> dict[str, int]:
    """RSS (``VmRSS``, KiB) and CPU ticks of a process and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            children = []
        todo.extend(int(c) for c in children)
    rss = ticks = 0
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text().splitlines()
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        rss += next(int(x.split()[1]) for x in status if x.startswith("VmRSS:"))
        ticks += int(fields[11]) + int(fields[12])
    return {"VmRSS": rss, "cpu_ticks": ticks, "processes": len(pids)}


def connections_per_process(port: int, root_pid: int) -> list[int]:
    """Established server-side connections on ``port`` per process of the tree."""
    want = f":{port:04X}"
    inodes: dict[str, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[1].endswith(want) and f[3] == "01":  # local port, ESTABLISHED
            inodes[f[9]] = 0
    counts = {}
    pids = [root_pid]
    pids += [int(c) for c in Path(f"/proc/{root_pid}/task/{root_pid}/children").read_text().split()]
    for p in pids:
        n = 0
        for fd in Path(f"/proc/{p}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                n += 1
        counts[p] = n
    return sorted((n for n in counts.values() if n), reverse=True)


def drive(group: Group, requests: Any, clients: int, duration_s: float) -> bs.Phase:
    """``clients`` closed-loop connections dealt round-robin over the group's servers."""
    return asyncio.run(run(group, requests, clients, duration_s))


async def run(group: Group, requests: Any, clients: int, duration_s: float) -> bs.Phase:
    return await bs.run_phase(
        group,
        requests,
        clients=clients,
        duration_s=duration_s,
        max_duration_s=duration_s + 60,
        timeout_s=10.0,
        ports=group.ports,
    )


class Group:
    """``n`` servers of one kind (engine or bare), or one uvicorn multi-worker server."""

    def __init__(self, kind: str, n: int, args: argparse.Namespace, env: dict[str, str]) -> None:
        self.kind, self.n = kind, n
        self.servers: list[bs.Server] = []
        work = Path(args.work)
        for i in range(1 if kind == "uvicorn-workers" else n):
            port = bs.free_port()
            e = {**env, "RECSYS_STATE_PATH": str(work / f"state-{kind}-{i}.sqlite")}
            if kind == "bare":
                argv = [sys.executable, str(Path(bs.__file__)), "--serve-bare", str(args.payload)]
            elif kind == "engine":
                argv = [sys.executable, "-m", "training.cli", "serve", "--artifact", str(args.base)]
            else:
                script = work / "uvicorn_workers.py"
                script.write_text(UVICORN_WORKERS)
                e["RECSYS_ARTIFACT"] = str(args.base)
                e["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1"  # as `recsys serve` does
                argv = [sys.executable, str(script), bs.HOST, str(port), str(n)]
            if kind != "uvicorn-workers":
                argv += ["--port", str(port)]
            log = work / f"{kind}-{n}-{i}.log"
            self.servers.append(bs.Server(argv, e, port, log))
        for s in self.servers:
            s.wait_ready("/readyz", timeout_s=900)
        if kind == "uvicorn-workers":
            time.sleep(args.settle_workers)  # /readyz answers once the first worker is up

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    @property
    def port(self) -> int:
        return self.servers[0].port

    def status(self) -> dict[str, int]:
        """Summed over the servers and their processes, as :meth:`bench_serving.Server.status`."""
        out = {"VmRSS": 0, "cpu_ticks": 0, "processes": 0}
        for s in self.servers:
            for k, v in tree_status(s.proc.pid).items():
                out[k] += v
        return out

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


def run_config(
    kind: str, n: int, args: argparse.Namespace, env: dict[str, str], ids: dict[str, list[str]]
) -> dict[str, Any]:
    group = Group(kind, n, args, env)
    try:
        rng = random.Random(args.seed)
        gen = bs._bare_requests(ids, rng) if kind == "bare" else bs._requests(ids, rng)
        drive(group, gen, args.clients, args.warmup)
        phase = drive(group, gen, args.clients, args.duration)
        after = group.status()
        spread = None
        if kind == "uvicorn-workers":
            # Connections stay open between phases only while driven: count during a short run.
            async def count() -> list[int]:
                task = asyncio.create_task(run(group, gen, args.clients, 2.0))
                await asyncio.sleep(1.0)
                out = connections_per_process(group.ports[0], group.servers[0].proc.pid)
                await task
                return out

            spread = asyncio.run(count())
    finally:
        group.stop()
    stats = bs._stats(phase.records, phase.elapsed_s)
    cpu_s = phase.server_cpu_s
    row = {
        "kind": kind,
        "processes": n,
        **{k: stats.get(k) for k in ("requests", "rps", "p50_ms", "p99_ms", "failures")},
        "server_cpu_ms_per_request": round(cpu_s / max(stats["requests"], 1) * 1000, 2),
        "server_cpu_s": round(cpu_s, 1),
        "client_cpu_s": round(phase.client_cpu_s, 1),
        "rss_mib_sum": bs.mib(after["VmRSS"]),
        "errors": phase.errors,
    }
    if spread is not None:
        row["connections_per_process"] = spread
    logger.info("%s", row)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/recsys-bench-serving", help="cache and logs")
    p.add_argument("--tracks", type=int, default=1_000_000)
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-bare", action="store_true")
    p.add_argument("--bare-payload", choices=("per-route", "recommendations"), default="per-route")
    p.add_argument("--uvicorn-workers", action="store_true", help="also uvicorn's workers=N")
    p.add_argument("--settle-workers", type=float, default=40.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    args.skip_build = False
    args.base = bs.ensure_artifact(args)
    ids = bs.sample_ids(args.base, 10_000, args.seed)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")},
        "OPENBLAS_NUM_THREADS": "1",
    }
    # The bare route answers captured engine answers, as in bench_serving.py.
    one = Group("engine", 1, args, env)
    try:
        payloads, _ = bs.capture_payloads(one.ports[0], ids, args.bare_payload)
    finally:
        one.stop()
    args.payload = work / "bare_payload.json"
    args.payload.write_text(json.dumps(payloads))

    configs = [("engine", n) for n in args.processes]
    if not args.no_bare:
        configs += [("bare", n) for n in args.processes]
    if args.uvicorn_workers:
        configs += [("uvicorn-workers", n) for n in args.processes if n > 1]
    rows = [run_config(k, n, args, env, ids) for _ in range(args.repeats) for k, n in configs]

    print(f"\n{args.clients} clients, {args.duration:.0f}s per run, {args.repeats} run(s) each")
    print(
        f"{'configuration':26s} {'rps':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'cpu ms/req':>11s} "
        f"{'client cpu s':>13s} {'RSS MiB (sum)':>14s} {'failures':>9s}"
    )
    best: dict[tuple[str, int], float] = {}
    for r in rows:
        name = f"{r['kind']} x{r['processes']}"
        extra = (
            f"  connections {r['connections_per_process']}"
            if "connections_per_process" in r
            else ""
        )
        print(
            f"{name:26s} {r['rps']:8.1f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
            f"{r['server_cpu_ms_per_request']:11.2f} {r['client_cpu_s']:13.1f} "
            f"{r['rss_mib_sum']:14.1f} {r['failures']:9d}{extra}"
        )
        key = (r["kind"], r["processes"])
        best.setdefault(key, 0.0)
        best[key] += r["rps"] / args.repeats
    ratios = {}
    if not args.no_bare:
        print("\nmean throughput ratio engine / bare:")
        for ne in args.processes:
            for nb in args.processes:
                ratio = best[("engine", ne)] / best[("bare", nb)]
                ratios[f"engine x{ne} / bare x{nb}"] = round(ratio, 3)
                print(f"  engine x{ne} / bare x{nb}: {ratio:.2f}")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = work / f"processes-{stamp}.json"
    out.write_text(
        json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()}, "runs": rows, "ratios": ratios},
            indent=2,
        )
    )
    print(f"results: {out}")
    return 1 if any(r["failures"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
