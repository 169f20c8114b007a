"""Benchmark recsys.retrieval: exact vs HNSW over a pool of N tracks.

Prints, for the exact (flat) and the HNSW index built over the same vectors in
the same process: build time, single-query latency p50/p99, batch throughput (with
and without per-query exclusions), recall@k of HNSW against exact, the HNSW/exact
latency ratio, index memory and the process's peak RSS.

The vectors are a synthetic stand-in for ALS item factors: a Gaussian mixture
(genres) with lognormal norm spread (popularity); queries are drawn like users.
``--vectors``/``--queries`` take real ``.npy`` matrices instead.

Examples
--------
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_retrieval.py --n 200000
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_retrieval.py --n 1000000 --hnsw-space ip
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import resource
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from recsys.retrieval import SINGLE_THREAD_MAX_QUERIES, VectorIndex, build_index  # noqa: E402


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB."""
    current = 0.0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return current, peak


def synthetic(
    n: int, d: int, n_queries: int, *, clusters: int, norm_sigma: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Clustered item vectors (n, d) and query vectors (n_queries, d), float32."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    x = np.empty((n, d), dtype=np.float32)
    step = 1 << 16  # generate in chunks: no float64 (n, d) temporary
    for s in range(0, n, step):
        e = min(n, s + step)
        block = centres[rng.integers(0, clusters, e - s)]
        block += 0.5 * rng.standard_normal((e - s, d), dtype=np.float32)
        block *= rng.lognormal(0.0, norm_sigma, (e - s, 1)).astype(np.float32)
        x[s:e] = block
    q = centres[rng.integers(0, clusters, n_queries)]
    q += 0.5 * rng.standard_normal((n_queries, d), dtype=np.float32)
    return x, q.astype(np.float32)


def single_latencies(idx: VectorIndex, q: np.ndarray, k: int) -> np.ndarray:
    """Seconds per single-query search, one query at a time (after 20 warm-ups)."""
    for i in range(min(20, len(q))):
        idx.search(q[i], k)
    out = np.empty(len(q))
    for i in range(len(q)):
        t = time.perf_counter()
        idx.search(q[i], k)
        out[i] = time.perf_counter() - t
    return out


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t


def measure(
    name: str, idx: VectorIndex, q_single: np.ndarray, q_batch: np.ndarray, k: int, exclude: list
) -> dict:
    lat = single_latencies(idx, q_single, k)
    (_, ids), t_batch = timed(idx.search, q_batch, k)
    _, t_excl = timed(idx.search, q_batch, k, exclude=exclude)
    row = {
        "name": name,
        "p50_ms": np.percentile(lat, 50) * 1e3,
        "p99_ms": np.percentile(lat, 99) * 1e3,
        "qps": len(q_batch) / t_batch,
        "qps_excl": len(q_batch) / t_excl,
        "mem_mb": idx.memory_bytes / 2**20,
        "ids": ids,
    }
    print(
        f"{name:>6}: single p50 {row['p50_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms | "
        f"batch {row['qps']:,.0f} q/s, with exclusions {row['qps_excl']:,.0f} q/s | "
        f"index {row['mem_mb']:.0f} MiB",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="pool size (tracks)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--metric", choices=["ip", "cosine"], default="ip")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--single", type=int, default=500, help="single queries timed")
    parser.add_argument("--batch", type=int, default=5_000, help="queries in the batch")
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=100)
    parser.add_argument("--ef-search", type=int, default=128)
    parser.add_argument("--hnsw-space", choices=["l2-augmented", "ip"], default="l2-augmented")
    parser.add_argument("--clusters", type=int, default=256)
    parser.add_argument("--norm-sigma", type=float, default=0.3, help="lognormal norm spread")
    parser.add_argument("--excluded", type=int, default=100, help="ids excluded per query")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, help="OpenMP threads for builds and batches (default: all)"
    )
    parser.add_argument("--vectors", type=Path, help=".npy (n, d) item vectors to use instead")
    parser.add_argument("--queries", type=Path, help=".npy (m, d) query vectors to use instead")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads is not None:
        faiss.omp_set_num_threads(args.threads)

    n_q = args.single + args.batch
    if args.vectors is not None:
        x = np.ascontiguousarray(np.load(args.vectors), dtype=np.float32)[: args.n]
        q_all = np.ascontiguousarray(np.load(args.queries), dtype=np.float32)
        q_all = q_all[np.random.default_rng(args.seed).integers(0, len(q_all), n_q)]
    else:
        x, q_all = synthetic(
            args.n,
            args.dim,
            n_q,
            clusters=args.clusters,
            norm_sigma=args.norm_sigma,
            seed=args.seed,
        )
    n, d = x.shape
    q_single, q_batch = q_all[: args.single], q_all[args.single :]
    rng = np.random.default_rng(args.seed + 1)
    exclude = [rng.integers(0, n, args.excluded) for _ in range(len(q_batch))]
    print(
        f"pool {n:,} x {d} float32 ({x.nbytes / 2**20:.0f} MiB), metric {args.metric}, k {args.k}; "
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} OpenMP threads "
        f"(single queries and batches < {SINGLE_THREAD_MAX_QUERIES} run on 1); "
        f"{len(q_single)} single queries, batch of {len(q_batch)}, {args.excluded} exclusions/query; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    print(f"rss after data: {rss_mb()[0]:.0f} MiB", flush=True)

    exact, t_exact = timed(build_index, x, metric=args.metric, exact_threshold=n + 1)
    print(f" exact: build {t_exact:.2f} s", flush=True)
    ex = measure("exact", exact, q_single, q_batch, args.k, exclude)
    print(f"rss with exact index: {rss_mb()[0]:.0f} MiB", flush=True)
    del exact
    gc.collect()

    hnsw, t_hnsw = timed(
        build_index,
        x,
        metric=args.metric,
        exact_threshold=0,
        hnsw_m=args.hnsw_m,
        ef_construction=args.ef_construction,
        ef_search=args.ef_search,
        hnsw_space=args.hnsw_space,
    )
    print(
        f"  hnsw: build {t_hnsw:.2f} s (M={args.hnsw_m}, efConstruction={args.ef_construction}, "
        f"efSearch={args.ef_search}, space {args.hnsw_space})",
        flush=True,
    )
    hn = measure("hnsw", hnsw, q_single, q_batch, args.k, exclude)
    print(f"rss with hnsw index: {rss_mb()[0]:.0f} MiB", flush=True)

    truth, found = ex["ids"], hn["ids"]
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, truth, strict=True))
    rec = hits / truth.size
    print(f"recall@{args.k} of HNSW vs exact: {rec:.4f}")
    print(
        f"HNSW/exact ratio: single-query p50 latency {hn['p50_ms'] / ex['p50_ms']:.3f}, "
        f"p99 {hn['p99_ms'] / ex['p99_ms']:.3f}; batch time {ex['qps'] / hn['qps']:.3f}"
    )
    cur, peak = rss_mb()
    print(f"process memory: rss {cur:.0f} MiB, peak (maxrss) {peak:.0f} MiB")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (other processes share the CPUs)")


if __name__ == "__main__":
    main()
