"""The serving load test end to end on a tiny artifact: what it drives, checks and reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The routes of the load test's mix.
ROUTES = {
    "recommendations (known user)",
    "recommendations (unknown user)",
    "artist radio",
    "track radio",
}


@pytest.mark.parametrize("workers", [1, 2])
def test_load_test_runs_reloads_and_reports(tmp_path: Path, workers: int) -> None:
    """One process, and a supervisor with two workers (reloads re-fork the workers)."""
    work = tmp_path / "work"
    argv = [
        sys.executable,
        str(ROOT / "benchmarks/bench_serving.py"),
        "--work",
        str(work),
        "--tracks",
        "3000",
        "--factors",
        "16",
        "--duration",
        "2",
        "--warmup",
        "1",
        "--reloads",
        "2",
        "--settle",
        "0.5",
        "--clients",
        "4",
        "--workers",
        str(workers),
    ]
    if workers == 1:
        argv += ["--per-route", "0.5"]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    run = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (results,) = work.glob("results-*.json")
    r = json.loads(results.read_text())

    # Zero failures anywhere, every reload changed the served version.
    assert all(r["routes"][p]["all"]["all"]["failures"] == 0 for p in ("steady", "reloads", "bare"))
    assert sum(x["ok"] for x in r["reloads"]) == 2 and r["versions_answered"] >= 3
    # Each route of the mix was driven, and reported with its latency percentiles.
    for route in ROUTES:
        stats = r["routes"]["steady"][route]["all"]
        assert stats["requests"] > 0 and 0 < stats["p50_ms"] <= stats["p99_ms"]
    # The bare route returns JSON of each engine answer's size (its user id aside).
    assert r["answer_bytes"].keys() == r["bare_answer_bytes"].keys()
    for kind, size in r["answer_bytes"].items():
        assert abs(r["bare_answer_bytes"][kind] - size) < 40, kind
    assert r["answer_bytes"]["artist"] > 2 * r["answer_bytes"]["known"]  # radios are larger
    assert len(r["slice_ratios"]) == 3 and r["ratio_rps"]
    for key in ("steady", "after_reloads", "steady_anon", "steady_file", "steady_pss"):
        assert r["rss_mib"][key] > 0
    # The split is of the same resident set (sampled at the same moment).
    split = r["rss_mib"]["steady_anon"] + r["rss_mib"]["steady_file"]
    assert split <= r["rss_mib"]["steady_rss"] + 1
    assert r["processes"] == (1 if workers == 1 else workers + 1)  # + the supervisor
    if workers == 1:
        assert r["memory"] == "VmRSS" and r["rss_mib"]["peak_vmhwm"] > 0
    else:
        # Summed proportional sets: shared pages counted once, so below the summed RSS.
        assert r["memory"] == "summed Pss" and r["rss_mib"]["peak_vmhwm"] is None
        assert r["rss_mib"]["max_sampled"] >= r["rss_mib"]["steady"] > 0
        assert r["rss_mib"]["steady"] < r["rss_mib"]["steady_rss"]
    assert "throughput ratio engine / bare" in run.stdout
    if workers == 1:
        # Each route driven alone on both servers, its CPU per request reported.
        assert set(r["per_route"]) == ROUTES
        for sides in r["per_route"].values():
            for who in ("engine", "bare"):
                assert sides[who]["rps"] > 0 and sides[who]["cpu_ms"] > 0
                assert sides[who]["failures"] == 0
        assert "each route alone" in run.stdout and "weighted by the mix" in run.stdout
    else:
        assert "per_route" not in r
