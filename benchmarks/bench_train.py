"""Time each stage of ``recsys train`` against a bare implicit fit of the same matrix.

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_train.py --scale large

Generates the platform (or reuses ``--data``), runs the whole pipeline (what
``recsys train`` runs), rebuilds the exact matrix the pipeline trained on, fits
a bare ``implicit.cpu.als.AlternatingLeastSquares`` on it with the same
parameters, and prints every stage's time and the ratio pipeline / bare fit,
all in one process so that machine noise hits both alike.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from threadpoolctl import threadpool_limits  # noqa: E402

from recsys.config import load_config  # noqa: E402
from recsys.models import ALSModel, confidence  # noqa: E402
from recsys.pipeline import prepare_training, train  # noqa: E402
from recsys.synth import generate_platform  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="large")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", help="existing contract directory (skips generation)")
    ap.add_argument("--keep", help="keep the generated data in this directory")
    ap.add_argument("--config", help="training settings (TOML or JSON, as `recsys train --config`)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        if args.data:
            data_dir = Path(args.data)
        else:
            data_dir = Path(args.keep) if args.keep else work / "data"
            if not (data_dir / "tracks.parquet").exists():
                t0 = time.perf_counter()
                generate_platform(data_dir, scale=args.scale, seed=args.seed)
                print(f"generated {args.scale} in {time.perf_counter() - t0:.1f}s")
        config = load_config(args.config)

        # The exact matrix the pipeline trains on: the pipeline's own stages before the fit.
        inter = prepare_training(data_dir, config).interactions
        model = ALSModel(**config.als)
        conf = confidence(inter.matrix, weighting=model.weighting, alpha=model.alpha)
        print(
            f"matrix: {inter.matrix.shape[0]:,} users x {inter.matrix.shape[1]:,} tracks, "
            f"{inter.matrix.nnz:,} pairs; params {config.als}"
        )

        with threadpool_limits(1, "blas"):
            bare = model.implicit_model()
            t0 = time.perf_counter()
            bare.fit(conf, show_progress=False)
            bare_s = time.perf_counter() - t0
        shape, pairs = inter.matrix.shape, inter.matrix.nnz
        del bare, conf, inter

        t0 = time.perf_counter()
        result = train(data_dir, work / "artifact", config)
        pipeline_s = time.perf_counter() - t0

        trained = result.manifest["training"]
        if (trained["users"], trained["items"], trained["pairs"]) != (*shape, pairs):
            raise SystemExit(f"the pipeline fitted another matrix: {trained} vs {shape}, {pairs}")
        print(f"\n{'stage':<12}{'seconds':>10}")
        for stage, secs in result.manifest["timings_s"].items():
            if stage != "total":
                print(f"{stage:<12}{secs:>10.2f}")
        print(
            f"{'pipeline':<12}{pipeline_s:>10.2f}   (whole train(), checksums and rename included)"
        )
        print(f"{'bare fit':<12}{bare_s:>10.2f}   (implicit ALS alone, same matrix and parameters)")
        print(f"\nratio pipeline / bare fit: {pipeline_s / bare_s:.2f}x (target <= 2x)")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS: {rss:,.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
