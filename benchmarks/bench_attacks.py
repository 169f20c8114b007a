"""Poisoning attacks on the engine, with and without the fraud defence, on real Last.fm data.

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_attacks.py \\
        [--shares 0.01 0.03 0.05] [--kinds random bandwagon farm] [--seed 0] [--targets 5]

Protocol (one seed):

1. map the HetRec data to the contract (``convert_lastfm``: one track per
   artist, a ``plays`` table) and hold out 20 % of every user's artists
   (``split_contract``, users with at least 5 artists); everything below
   happens on the 80 % train part, the held-out pairs are only scored;
2. draw ``--targets`` verified target artists of modest popularity: between
   ``--min-listeners`` and ``--max-listeners`` listeners in the train part
   (``pick_targets``);
3. for every attack kind and share, write a copy of the train part with
   ``share`` x users fake accounts promoting every target
   (``inject_attack``, the attack defaults: see ``recsys.evaluation.attacks``);
4. train the engine through ``recsys.pipeline.train`` twice on the clean
   train part and twice on each attacked copy: with no defence
   (``events.detect_fraud = false``) and with the defence (the default
   configuration: fraud detection, whose ``campaign`` rule targets exactly
   this; flagged accounts do not train the model);
5. ask the served recommender for every genuine test user's top ``--k``
   (seen artists excluded) and report the target hit ratio (share of those
   users with at least one target in their list) and NDCG@k of the held-out
   pairs.

Targets of the issue: HR under attack with the defence <= 1.2 x HR with no
attack (no defence), and genuine NDCG@k under attack with the defence within
1 % of NDCG@k with no attack and no defence (and the defence alone, with no
attack, within 1 % too).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pandas as pd  # noqa: E402

from recsys.config import TrainConfig, config_from_dict  # noqa: E402
from recsys.contract.lastfm import convert_lastfm  # noqa: E402
from recsys.evaluation.attacks import (  # noqa: E402
    ATTACK_KINDS,
    FAKE_PREFIX,
    Attack,
    inject_attack,
    pick_targets,
    target_hit_ratio,
)
from recsys.evaluation.holdout import evaluate_artifact, split_contract  # noqa: E402
from recsys.pipeline import train  # noqa: E402

DEFAULT_SRC = Path(__file__).resolve().parents[1].parent / "shared/data/lastfm-hetrec2011-2k"


@dataclass
class Run:
    """One training run, scored on the genuine test users."""

    hit_ratio: float
    ndcg: float
    fakes_flagged: int
    genuine_flagged: int
    seconds: float


def run_once(
    data_dir: Path,
    work: Path,
    config: TrainConfig,
    test: pd.DataFrame,
    users: list[str],
    targets: tuple[str, ...],
    k: int,
) -> Run:
    """Train on ``data_dir``, recommend to ``users``, score; the artifact is removed."""
    t0 = time.perf_counter()
    result = train(data_dir, work / "artifact", config)
    out = evaluate_artifact(result.path, test, k=k, users=users)
    flagged = result.path / "fraud" / "accounts.parquet"
    ids = pd.read_parquet(flagged)["user_id"] if flagged.exists() else pd.Series([], dtype=str)
    fakes = int(ids.astype(str).str.startswith(FAKE_PREFIX).sum())
    shutil.rmtree(result.path, ignore_errors=True)
    return Run(
        hit_ratio=target_hit_ratio([out.top.get(u, []) for u in users], targets),
        ndcg=float(out.metrics["ndcg"]),
        fakes_flagged=fakes,
        genuine_flagged=len(ids) - fakes,
        seconds=time.perf_counter() - t0,
    )


def run_protocol(
    src: Path,
    *,
    seed: int,
    kinds: list[str],
    shares: list[float],
    n_targets: int,
    min_listeners: int,
    max_listeners: int,
    k: int,
    work: Path,
) -> dict[str, Any]:
    """The whole protocol for one seed; returns every figure (JSON-able)."""
    contract = work / "contract"
    convert_lastfm(src, contract)
    split = work / "train"
    test = split_contract(contract, split, random_state=seed)
    users = sorted(test["user_id"].unique())
    targets = pick_targets(
        split,
        n_targets,
        min_listeners=min_listeners,
        max_listeners=max_listeners,
        random_state=seed,
    )
    configs = {
        "none": config_from_dict({"events": {"detect_fraud": False}}),
        "defence": config_from_dict({}),
    }
    base = {
        name: run_once(split, work, cfg, test, users, targets, k) for name, cfg in configs.items()
    }
    rows = []
    for kind in kinds:
        for share in shares:
            attacked = work / "attacked"
            injected = inject_attack(
                split, attacked, Attack(kind=kind, share=share, targets=targets, random_state=seed)
            )
            runs = {
                name: run_once(attacked, work, cfg, test, users, targets, k)
                for name, cfg in configs.items()
            }
            rows.append(
                {
                    "kind": kind,
                    "share": share,
                    "fakes": len(injected.fake_user_ids),
                    "none": runs["none"].__dict__,
                    "defence": runs["defence"].__dict__,
                }
            )
            shutil.rmtree(attacked, ignore_errors=True)
    return {
        "seed": seed,
        "k": k,
        "targets": list(targets),
        "target_band": [min_listeners, max_listeners],
        "genuine_test_users": len(users),
        "no_attack": {name: r.__dict__ for name, r in base.items()},
        "attacks": rows,
    }


def print_table(rep: dict[str, Any]) -> None:
    """The attack table: HR and NDCG with no attack / under attack, without / with the defence."""
    k = rep["k"]
    base = rep["no_attack"]
    hr0, nd0 = base["none"]["hit_ratio"], base["none"]["ndcg"]
    hr0d, nd0d = base["defence"]["hit_ratio"], base["defence"]["ndcg"]
    print(
        f"seed {rep['seed']}: {rep['genuine_test_users']} genuine test users; targets "
        f"{', '.join(rep['targets'])} ({rep['target_band'][0]}-{rep['target_band'][1]} "
        f"listeners in the train part)"
    )
    print(
        f"no attack: HR@{k} {hr0:.4f} (defence {hr0d:.4f}); NDCG@{k} {nd0:.4f} "
        f"(defence {nd0d:.4f}, {100 * (nd0d - nd0) / nd0:+.2f} %); genuine accounts flagged "
        f"by the defence: {base['defence']['genuine_flagged']}"
    )
    head = (
        f"{'kind':<10}{'share':>6}{'fakes':>6}  {'HR0':>7}{'HR0+d':>7}{'HRatk':>7}{'HRatk+d':>8}"
        f"{'x HR0':>7}{'x HR0+d':>8}  {'ND0':>7}{'ND0+d':>7}{'NDatk':>7}{'NDatk+d':>8}{'dND %':>7}"
        f"  {'fakes flagged':>13}{'genuine':>8}"
    )
    print(head)
    for row in rep["attacks"]:
        none, dfn = row["none"], row["defence"]
        print(
            f"{row['kind']:<10}{row['share']:>6.2f}{row['fakes']:>6}  {hr0:>7.4f}{hr0d:>7.4f}"
            f"{none['hit_ratio']:>7.4f}{dfn['hit_ratio']:>8.4f}"
            f"{dfn['hit_ratio'] / hr0 if hr0 else float('nan'):>7.2f}"
            f"{dfn['hit_ratio'] / hr0d if hr0d else float('nan'):>8.2f}  "
            f"{nd0:>7.4f}{nd0d:>7.4f}{none['ndcg']:>7.4f}{dfn['ndcg']:>8.4f}"
            f"{100 * (dfn['ndcg'] - nd0) / nd0:>+7.2f}  "
            f"{dfn['fakes_flagged']:>6}/{row['fakes']:<6}{dfn['genuine_flagged']:>8}"
        )
    print(
        "HR0 / ND0: no attack, no defence; +d: with the defence; atk: under attack; "
        "x HR0 = HRatk+d / HR0, x HR0+d = HRatk+d / HR0+d; dND % = NDatk+d vs ND0"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC)
    ap.add_argument("--shares", type=float, nargs="+", default=[0.01, 0.03, 0.05])
    ap.add_argument("--kinds", nargs="+", default=list(ATTACK_KINDS), choices=ATTACK_KINDS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--targets", type=int, default=5)
    ap.add_argument("--min-listeners", type=int, default=10)
    ap.add_argument("--max-listeners", type=int, default=40)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not (args.src / "user_artists.dat").exists():
        raise SystemExit(f"Last.fm data not found at {args.src}")
    work = Path(tempfile.mkdtemp(prefix="bench-attacks-"))
    t0 = time.perf_counter()
    try:
        rep = run_protocol(
            args.src,
            seed=args.seed,
            kinds=args.kinds,
            shares=args.shares,
            n_targets=args.targets,
            min_listeners=args.min_listeners,
            max_listeners=args.max_listeners,
            k=args.k,
            work=work,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rep["elapsed_s"] = round(time.perf_counter() - t0, 1)
    print_table(rep)
    print(f"elapsed {rep['elapsed_s']} s")
    if args.json:
        args.json.write_text(json.dumps(rep, indent=2))


if __name__ == "__main__":
    main()
