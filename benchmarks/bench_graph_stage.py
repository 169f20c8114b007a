"""Time the pipeline's ``graph`` stage alone, on saved inputs.

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_graph_stage.py \
        --data /tmp/large_data --cache /tmp/graph_inputs [--factors FILE.npy] [--repeat 2]

The first run loads the contract and runs the stages before the graph as
``recsys train`` does (load, pool, fraud, events), then pickles the graph
stage's inputs under ``--cache``; later runs load those in seconds. Artist
vectors: ``--factors`` (an ``(n_artists, d)`` ``.npy``, e.g. the pipeline's
own), else random normal vectors (seed 0, d = 128), which skip the fit but
give the learned candidates a different mix. Prints the wall time of
``build_graph`` per repeat; sub-step timings come from the library's log.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import logging  # noqa: E402
import pickle  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from recsys.config import TrainConfig  # noqa: E402
from recsys.graph.build import GraphInputs, build_graph  # noqa: E402


def prepare(data_dir: Path, config: TrainConfig) -> GraphInputs:
    """The graph stage's inputs, from the same stages as :func:`recsys.pipeline.train`."""
    from recsys.contract.load import load_contract
    from recsys.events import select_training_events
    from recsys.fraud import FraudDetector
    from recsys.graph.stage import graph_inputs, slim_events
    from recsys.pipeline import FlaggedRows
    from recsys.pool import build_pool

    data = load_contract(data_dir)
    pool = build_pool(data.tracks, data.artists, data.labels, data.opt_outs, rules=config.pool)
    filters = ()
    if config.events.detect_fraud:
        fraud = FraudDetector(settings=config.fraud).detect(data)
        filters = (FlaggedRows("fraud", fraud.stream_flagged),)
    events, _ = select_training_events(data, pool.eligible, rules=config.events, filters=filters)
    factors = np.random.default_rng(0).standard_normal((len(data.artists), 128)).astype(np.float32)
    return graph_inputs(data, pool.eligible, factors, slim_events(events))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="contract directory")
    ap.add_argument("--cache", type=Path, required=True, help="directory for the saved inputs")
    ap.add_argument("--factors", type=Path, help="artist vectors (.npy); default random")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = TrainConfig()

    cached = args.cache / "graph_inputs.pkl"
    if cached.exists():
        with cached.open("rb") as f:
            inputs = pickle.load(f)
    else:
        t0 = time.perf_counter()
        inputs = prepare(args.data, config)
        args.cache.mkdir(parents=True, exist_ok=True)
        with cached.open("wb") as f:
            pickle.dump(inputs, f, protocol=5)
        print(f"prepared and saved inputs in {time.perf_counter() - t0:.1f}s")
    if args.factors:
        inputs = dataclasses.replace(inputs, artist_factors=np.load(args.factors))
    print(f"{len(inputs.event_user):,} events, {len(inputs.artist_ids):,} artists")
    for i in range(args.repeat):
        t0 = time.perf_counter()
        graph = build_graph(inputs, config.graph)
        print(
            f"run {i + 1}: build_graph {time.perf_counter() - t0:.2f}s, "
            f"{len(graph.relations):,} relations, "
            f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB"
        )


if __name__ == "__main__":
    main()
