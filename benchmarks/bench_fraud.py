"""Measure the fraud detector against the synthetic platform's ground truth.

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_fraud.py --scale small --seed 0
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_fraud.py --data /path/to/platform
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_fraud.py --scale medium --plays

Generates a platform (or takes ``--data``, a directory written by
``recsys generate``), runs ``FraudDetector().detect`` and prints, per fraud
kind: accounts, flagged, recall and precision (flagged accounts of that kind
over those plus every flagged genuine account); the overall precision; the
share of fraudulent streams caught and of genuine streams lost (streams of at
least 30 s; with ``--plays``, plays weighted by their count); how many
accounts of each kind meeting every rule's conditions (with ``streams``, the
taste-only rules alone flag nothing), and how close the closest genuine
account came to each threshold (ratio 1.0 = meets); detection time and memory.

``--plays`` first aggregates the streams into a ``plays`` table (user x track
counts of streams of at least 30 s), so only the profile rules can run.
``--taste-alone`` lets the taste-only rules (concentration, obscure,
low_diversity) flag accounts on their own.

Only this benchmark and the tests read ``_truth``; the detector never does.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recsys.contract.load import load_contract
from recsys.contract.schema import MIN_STREAM_MS
from recsys.fraud import ACCOUNT_REASONS, FraudDetector, FraudSettings
from recsys.synth import SCALES, generate_platform

KINDS = ("bot_loop", "bot_farm", "bot_bought")


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _status_mib(field: str) -> float | None:
    """A memory line of /proc/self/status (Linux), in MiB; None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the process's peak RSS (VmHWM) so the next peak is the detector's own (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def to_plays(src: Path, dst: Path) -> Path:
    """Copy a platform, replacing ``streams`` by aggregated ``plays`` (streams >= 30 s)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.parquet"):
        if f.name != "streams.parquet":
            shutil.copy(f, dst / f.name)
    streams = pq.read_table(src / "streams.parquet", columns=["user_id", "track_id", "ms_played"])
    streams = streams.filter(pc.greater_equal(streams["ms_played"], MIN_STREAM_MS))
    plays = streams.group_by(["user_id", "track_id"]).aggregate([("ms_played", "count")])
    plays = plays.rename_columns(["user_id", "track_id", "plays"])
    plays = plays.cast(
        pa.schema([("user_id", pa.string()), ("track_id", pa.string()), ("plays", pa.int64())])
    )
    pq.write_table(plays, dst / "plays.parquet")
    return dst


def evaluate(data_dir: Path, truth_dir: Path, settings: FraudSettings) -> dict[str, object]:
    """Load, detect and score one platform; returns the figures as a dict."""
    t0 = time.perf_counter()
    data = load_contract(data_dir)
    load_s = time.perf_counter() - t0

    rss_before = _status_mib("VmRSS")
    peak_reset = _reset_peak_rss()
    tracemalloc.start()
    t0 = time.perf_counter()
    result = FraudDetector(settings).detect(data)
    detect_s = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_peak = _status_mib("VmHWM") if peak_reset else None

    truth = pd.read_parquet(truth_dir / "accounts.parquet", columns=["user_id", "kind"])
    kind = (
        data.users[["user_id"]]
        .merge(truth, on="user_id", how="left")["kind"]
        .fillna("genuine")
        .to_numpy()
    )
    flagged = result.account_flagged
    genuine = kind == "genuine"
    n_false = int((flagged & genuine).sum())

    per_kind = {}
    for k in KINDS:
        m = kind == k
        hit = int((flagged & m).sum())
        per_kind[k] = {
            "accounts": int(m.sum()),
            "flagged": hit,
            "recall": hit / max(1, int(m.sum())),
            "precision": hit / max(1, hit + n_false),
        }

    ev = data.events
    row_kind = kind[ev["user_idx"].to_numpy()]
    if data.event_table == "streams":
        weight = (ev["ms_played"].to_numpy() >= MIN_STREAM_MS).astype(np.float64)
    else:
        weight = ev["plays"].to_numpy().astype(np.float64)
    row_genuine = row_kind == "genuine"
    caught = result.stream_flagged
    streams = {
        "fraud_streams": float(weight[~row_genuine].sum()),
        "fraud_caught_share": float(weight[~row_genuine & caught].sum())
        / max(1.0, float(weight[~row_genuine].sum())),
        "genuine_streams": float(weight[row_genuine].sum()),
        "genuine_lost_share": float(weight[row_genuine & caught].sum())
        / max(1.0, float(weight[row_genuine].sum())),
    }

    # Accounts of each kind whose features meet each rule's conditions (for a
    # supporting rule with streams, that alone flags nothing), and the closest
    # genuine account per rule.
    rules = {}
    for r in ACCOUNT_REASONS:
        if f"account:{r}" not in result.rules_run:
            continue
        ratio = result.rule_ratio[:, ACCOUNT_REASONS.index(r)]
        met = ratio >= 1.0
        row: dict[str, object] = {k: int((met & (kind == k)).sum()) for k in ("genuine", *KINDS)}
        row["closest_genuine_ratio"] = (
            round(float(ratio[genuine].max()), 3) if genuine.any() else 0.0
        )
        rules[r] = row

    n_flagged = int(flagged.sum())
    return {
        "event_table": data.event_table,
        "users": len(data.users),
        "events": len(ev),
        "per_kind": per_kind,
        "flagged_accounts": n_flagged,
        "flagged_genuine": n_false,
        "precision": (n_flagged - n_false) / max(1, n_flagged),
        "streams": streams,
        "rules": rules,
        "rules_skipped": result.rules_skipped,
        "load_s": round(load_s, 2),
        "detect_s": round(detect_s, 2),
        "detect_traced_peak_mib": round(traced_peak / 2**20, 1),
        "rss_before_detect_mib": None if rss_before is None else round(rss_before, 1),
        "rss_peak_during_detect_mib": None if rss_peak is None else round(rss_peak, 1),
        "max_rss_mib": round(_max_rss_mib(), 1),
    }


def print_report(rep: dict[str, object], label: str) -> None:
    print(f"== {label}: {rep['event_table']}, {rep['users']} users, {rep['events']} events")
    print(f"{'kind':<12}{'accounts':>9}{'flagged':>9}{'recall':>9}{'precision':>11}")
    for k, row in rep["per_kind"].items():
        print(
            f"{k:<12}{row['accounts']:>9}{row['flagged']:>9}{row['recall']:>9.3f}{row['precision']:>11.3f}"
        )
    print(
        f"flagged accounts {rep['flagged_accounts']} (genuine {rep['flagged_genuine']}), "
        f"precision {rep['precision']:.4f}"
    )
    s = rep["streams"]
    print(
        f"fraudulent streams caught {s['fraud_caught_share']:.4f} of {s['fraud_streams']:.0f}; "
        f"genuine streams lost {s['genuine_lost_share']:.5f} of {s['genuine_streams']:.0f}"
    )
    print("accounts meeting each rule's conditions (closest genuine ratio; 1.0 meets):")
    for r, row in rep["rules"].items():
        print(
            f"  {r:<14}"
            + " ".join(f"{k}={row[k]}" for k in ("genuine", *KINDS))
            + f"  closest_genuine={row.get('closest_genuine_ratio', '-')}"
        )
    if rep["rules_skipped"]:
        print("skipped:", ", ".join(rep["rules_skipped"]))
    print(
        f"load {rep['load_s']} s, detect {rep['detect_s']} s; memory: RSS before detection "
        f"{rep['rss_before_detect_mib']} MiB, peak RSS during detection "
        f"{rep['rss_peak_during_detect_mib']} MiB, numpy peak traced in detection "
        f"{rep['detect_traced_peak_mib']} MiB, process max RSS {rep['max_rss_mib']} MiB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="small", choices=sorted(SCALES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=None, help="existing platform directory")
    parser.add_argument("--out", type=Path, default=None, help="keep the generated platform here")
    parser.add_argument("--plays", action="store_true", help="aggregate streams into plays first")
    parser.add_argument(
        "--taste-alone",
        action="store_true",
        help="FraudSettings(taste_rules_flag_alone=True): concentration etc. flag on their own",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench_fraud_"))
    try:
        if args.data is not None:
            data_dir = args.data
            label = str(args.data)
        else:
            data_dir = args.out or tmp / "platform"
            t0 = time.perf_counter()
            generate_platform(data_dir, scale=args.scale, seed=args.seed)
            label = f"{args.scale} seed {args.seed}"
            print(f"generated {label} in {time.perf_counter() - t0:.1f} s")
        truth_dir = data_dir / "_truth"
        if args.plays:
            data_dir = to_plays(data_dir, tmp / "plays")
            label += " (plays)"
        settings = FraudSettings(taste_rules_flag_alone=args.taste_alone)
        if args.taste_alone:
            label += " (taste rules flag alone)"
        rep = evaluate(data_dir, truth_dir, settings)
        print_report(rep, label)
        if args.json:
            print(json.dumps(rep, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
