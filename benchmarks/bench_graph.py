"""Similar-artist graph and listening surfaces: held-out seeds, farms, mix coherence, speed.

Recovery of held-out editorial relations
    A random fifth of the editorial seed pairs is removed from a copy of the
    contract directory (``--folds 5``: each fifth in turn, pooled); the
    engine is trained on the copy twice, with the graph in ``learned`` mode
    (learned similarity alone, no editorial input) and in the served
    ``anchored`` mode. A held-out pair (a, b), both
    artists in the pool, is *recovered* when b is in a's top-10 similar
    artists or a in b's. Printed: the share recovered by each graph (and the
    share per direction, b in top-10 of a, over both directions).

Mix coherence (synthetic data only)
    For users the model knows, the mixes surface (n=6, size=30) is asked
    for; with the true style of each track (``_truth/tracks.parquet``), the
    share of same-style track pairs within one mix is compared with the
    share across two mixes of the same user.

Serving time (synthetic only)
    Mean milliseconds per library call of each listening surface.

Stream farm (``--farm-seeds N``)
    On N tiny platforms, a farm of fake accounts co-listens a target artist
    with popular tracks; counted: popular artists' top-20 lists the target
    enters, for the served graph and three ablations (see :func:`farm`).

Datasets: the synthetic ``small`` platform (seed 0) and the Last.fm HetRec
2011 data converted by :func:`recsys.contract.lastfm.convert_lastfm` (its
editorial seeds are derived from shared tags).

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_graph.py \
        [--dataset synthetic|lastfm|all|none] [--folds 1-5] [--farm-seeds N]
        [--lastfm DIR] [--workdir DIR] [--seed N]
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
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from recsys.config import TrainConfig  # noqa: E402
from recsys.graph.config import GraphConfig  # noqa: E402
from recsys.pipeline import train  # noqa: E402

LASTFM = Path("/work/shared/data/lastfm-hetrec2011-2k")
TOP = 10


def holdout_copy(src: Path, dst: Path, fold: int, folds: int, seed: int) -> pd.DataFrame:
    """Copy a contract directory without one fifth of its seed pairs; return those.

    The unique undirected pairs are shuffled with ``seed`` and cut into five
    parts; part ``fold`` is held out.
    """
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("editorial_seeds.*", "_truth"))
    seeds = pd.read_parquet(src / "editorial_seeds.parquet")
    lo = np.minimum(seeds["artist_id"], seeds["similar_artist_id"])
    hi = np.maximum(seeds["artist_id"], seeds["similar_artist_id"])
    seeds = seeds.assign(pair=lo + "|" + hi).drop_duplicates("pair").drop(columns="pair")
    part = np.random.default_rng(seed).permutation(len(seeds)) % 5
    held = part == fold
    seeds.loc[~held].to_parquet(dst / "editorial_seeds.parquet", index=False)
    return seeds.loc[held].reset_index(drop=True)


def top_lists(artifact: Path, k: int) -> dict[str, set[str]]:
    rel = pd.read_parquet(artifact / "graph/relations.parquet")
    rel = rel.loc[rel["rank"] <= k]
    return {a: set(g["similar_artist_id"]) for a, g in rel.groupby("artist_id")}


def recovery(artifact: Path, held: pd.DataFrame, k: int = TOP) -> dict[str, float]:
    tracks = pd.read_parquet(artifact / "catalogue/tracks.parquet")
    pool_artists = set(tracks.loc[tracks["in_pool"], "artist_id"])
    lists = top_lists(artifact, k)
    ok = held["artist_id"].isin(pool_artists) & held["similar_artist_id"].isin(pool_artists)
    pairs = held.loc[ok, ["artist_id", "similar_artist_id"]].to_numpy()
    fwd = np.array([b in lists.get(a, ()) for a, b in pairs])
    bwd = np.array([a in lists.get(b, ()) for a, b in pairs])
    return {
        "pairs": len(pairs),
        "recovered": float(np.mean(fwd | bwd)) if len(pairs) else float("nan"),
        "per_direction": float(np.mean(np.r_[fwd, bwd])) if len(pairs) else float("nan"),
    }


def mix_coherence(artifact: Path, truth: Path, n_users: int, seed: int) -> dict[str, float]:
    from recsys.surfaces.engine import Engine

    engine = Engine.load(artifact)
    style = pd.read_parquet(truth / "tracks.parquet").set_index("track_id")["style"]
    users = engine.artifact.user_ids
    rng = np.random.default_rng(seed)
    sample = rng.choice(users, size=min(n_users, len(users)), replace=False)
    within = [0, 0]
    across = [0, 0]
    n_mixes = []
    t0 = time.perf_counter()
    for u in sample:
        mixes = engine.listening.mixes(str(u), n=6, size=30).mixes
        n_mixes.append(len(mixes))
        styles = [style.reindex([i.track_id for i in m.items]).to_numpy() for m in mixes]
        for i, si in enumerate(styles):
            eq = si[:, None] == si[None, :]
            iu = np.triu_indices(len(si), 1)
            within[0] += int(eq[iu].sum())
            within[1] += len(iu[0])
            for sj in styles[i + 1 :]:
                eq = si[:, None] == sj[None, :]
                across[0] += int(eq.sum())
                across[1] += eq.size
    elapsed = time.perf_counter() - t0
    return {
        "users": len(sample),
        "mixes_per_user": float(np.mean(n_mixes)),
        "same_style_within": within[0] / max(within[1], 1),
        "same_style_across": across[0] / max(across[1], 1),
        "ms_per_user": 1000 * elapsed / max(len(sample), 1),
    }


def latency(artifact: Path, n: int, seed: int) -> dict[str, float]:
    """Mean milliseconds per request of each listening surface (library calls, one thread)."""
    from recsys.surfaces.engine import Engine

    surfaces = Engine.load(artifact).listening
    a = surfaces.ctx.artifact
    rng = np.random.default_rng(seed)
    artists = rng.choice(a.artists["artist_id"].to_numpy(), n)
    users = rng.choice(a.user_ids, n)
    tracks = rng.choice(a.tracks.loc[a.tracks["in_pool"], "track_id"].to_numpy(), n)
    calls = {
        "similar_artists_k20": lambda i: surfaces.similar_artists(artists[i], 20),
        "artist_radio_50": lambda i: surfaces.artist_radio(artists[i], 50),
        "artist_radio_50_personal": lambda i: surfaces.artist_radio(
            artists[i], 50, user_id=users[i]
        ),
        "track_radio_50": lambda i: surfaces.track_radio(tracks[i], 50),
        "mixes_6x30": lambda i: surfaces.mixes(users[i], 6, 30),
        "release_radar_30": lambda i: surfaces.release_radar(users[i], 30),
    }
    out = {}
    for name, call in calls.items():
        t0 = time.perf_counter()
        for i in range(n):
            call(i)
        out[name] = round(1000 * (time.perf_counter() - t0) / n, 2)
    return out


def run(name: str, data: Path, work: Path, seed: int, folds: int, truth: Path | None) -> dict:
    out: dict = {"dataset": name, "folds": folds}
    for mode in ("learned", "anchored"):
        hits = []
        for fold in range(folds):
            held = holdout_copy(data, work / f"{name}-holdout", fold, folds, seed)
            cfg = replace(TrainConfig(), graph=GraphConfig(mode=mode))
            t0 = time.perf_counter()
            res = train(work / f"{name}-holdout", work / f"{name}-{mode}", cfg)
            r = recovery(res.path, held)
            r["train_s"] = round(time.perf_counter() - t0, 1)
            r["graph_s"] = res.manifest["timings_s"]["graph"]
            r["relations"] = res.manifest["graph"]["relations"]
            out.setdefault(f"{mode}_folds", []).append(r)
            hits.append((r["pairs"], r["recovered"], r["per_direction"]))
            if mode == "anchored" and fold == 0 and truth is not None:
                out["mixes"] = mix_coherence(res.path, truth, 300, seed)
                out["latency_ms"] = latency(res.path, 200, seed)
        pairs = sum(h[0] for h in hits)
        out[mode] = {
            "pairs": pairs,
            "recovered": sum(h[0] * h[1] for h in hits) / max(pairs, 1),
            "per_direction": sum(h[0] * h[2] for h in hits) / max(pairs, 1),
        }
    return out


FARM_CONFIGS = {
    "anchored (served)": GraphConfig(),
    "anchored, no vector floor": GraphConfig(min_vector_similarity=-1.0),
    "learned, vector floor": GraphConfig(mode="learned"),
    "learned, no vector floor": GraphConfig(mode="learned", min_vector_similarity=-1.0),
}


def farm(work: Path, seeds: list[int], share: float = 0.05, top: int = 20) -> dict:
    """Stream-farm ablation on tiny platforms: popular artists' lists the target enters.

    For each seed, a modestly popular target artist (8-25 listeners) is
    promoted by a ``farm`` of ``share`` x users fake accounts sharing 30
    popular filler tracks and streaming two of the target's tracks 30 times
    each. A list is *entered* when the target is in a filler artist's top-20
    after the attack but was not before (same graph settings).
    """
    from recsys.evaluation.attacks import FAKE_PREFIX, Attack, inject_attack
    from recsys.synth import generate_platform

    def lists(artifact: Path) -> dict[str, set[str]]:
        rel = pd.read_parquet(artifact / "graph/relations.parquet")
        rel = rel.loc[rel["rank"] <= top]
        return {a: set(g["similar_artist_id"]) for a, g in rel.groupby("artist_id")}

    entered: dict[str, list[int]] = {k: [] for k in FARM_CONFIGS}
    for seed in seeds:
        base = work / f"farm-{seed}"
        data = generate_platform(base / "data", scale="tiny", seed=seed).out_dir
        tracks = pd.read_parquet(data / "tracks.parquet")
        streams = pd.read_parquet(data / "streams.parquet")
        clean0 = train(data, base / "probe")
        cat = pd.read_parquet(clean0.path / "catalogue/tracks.parquet")
        pool = cat.loc[cat["in_pool"]]
        listeners = (
            streams.merge(pool[["track_id", "artist_id"]], on="track_id")
            .groupby("artist_id")["user_id"]
            .nunique()
        )
        band = sorted(listeners[(listeners >= 8) & (listeners <= 25)].index)
        target = band[np.random.default_rng(seed).integers(len(band))]
        targets = tuple(pool.loc[pool["artist_id"] == target].nlargest(2, "listeners")["track_id"])
        attack = Attack(
            kind="farm",
            share=share,
            targets=targets,
            filler=30,
            target_plays=30,
            popular_pool=40,
            random_state=seed,
        )
        inject_attack(data, base / "attacked", attack)
        fake = pd.read_parquet(base / "attacked/streams.parquet")
        fake = fake.loc[fake["user_id"].str.startswith(FAKE_PREFIX)]
        popular = set(tracks.set_index("track_id").loc[fake["track_id"].unique(), "artist_id"])
        popular.discard(target)
        for name, graph in FARM_CONFIGS.items():
            cfg = replace(TrainConfig(), graph=graph)
            before = lists(train(data, base / "clean", cfg).path)
            after = lists(train(base / "attacked", base / "att", cfg).path)
            n = sum(target in after.get(p, ()) and target not in before.get(p, ()) for p in popular)
            entered[name].append(int(n))
    return {
        "seeds": seeds,
        "share": share,
        "entered_per_seed": entered,
        "seeds_with_entry": {k: int(np.sum(np.array(v) > 0)) for k, v in entered.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="all", choices=["synthetic", "lastfm", "all", "none"])
    p.add_argument("--lastfm", type=Path, default=LASTFM)
    p.add_argument("--workdir", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--folds", type=int, default=1, choices=range(1, 6), help="fifths held out in turn"
    )
    p.add_argument("--no-mixes", action="store_true")
    p.add_argument("--farm-seeds", type=int, default=0, help="run the farm ablation on N seeds")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-graph-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    if args.dataset in ("synthetic", "all"):
        from recsys.synth import generate_platform

        data = work / "small"
        if not (data / "tracks.parquet").exists():
            generate_platform(data, scale="small", seed=0)
        truth = None if args.no_mixes else data / "_truth"
        results.append(run("synthetic-small", data, work, args.seed, args.folds, truth))
    if args.dataset in ("lastfm", "all"):
        from recsys.contract.lastfm import convert_lastfm

        data = work / "lastfm"
        if not (data / "plays.parquet").exists():
            convert_lastfm(args.lastfm, data)
        results.append(run("lastfm", data, work, args.seed, args.folds, None))
    if args.farm_seeds:
        f = farm(work, list(range(1, args.farm_seeds + 1)))
        print(json.dumps(f, indent=1))
        for name, n in f["seeds_with_entry"].items():
            print(
                f"farm ({f['share']:.0%} fake accounts): target entered popular artists' "
                f"top-20 on {n} of {len(f['seeds'])} platforms with {name}"
            )
    for r in results:
        print(json.dumps(r, indent=1))
        print(
            f"{r['dataset']}: held-out seed pairs recovered in top-{TOP}: "
            f"learned {r['learned']['recovered']:.3f}, anchored {r['anchored']['recovered']:.3f} "
            f"({r['anchored']['pairs']} pairs)"
        )
        if "mixes" in r:
            m = r["mixes"]
            print(
                f"{r['dataset']}: same-style track pairs within a mix {m['same_style_within']:.3f} "
                f"vs across mixes {m['same_style_across']:.3f}"
            )


if __name__ == "__main__":
    main()
