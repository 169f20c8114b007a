"""Time the synthetic platform generator at one scale.

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_generate.py --scale large

Prints the generation time, peak memory (max RSS of this process), rows per
table, file sizes, the bot share and the number of distinct user-track pairs
among the streams. The output goes to a temporary directory that is removed
at the end unless ``--out`` is given.
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
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recsys.synth import SCALES, generate_platform


def _max_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def distinct_pairs(streams_path: Path) -> int:
    """Distinct (user_id, track_id) pairs, read as dictionary indices (no per-row strings)."""
    cols = ["user_id", "track_id"]
    pf = pq.ParquetFile(streams_path, read_dictionary=cols)
    ref: dict[str, object] = {}
    keys = []
    for rg in range(pf.num_row_groups):
        table = pf.read_row_group(rg, columns=cols)
        table = table.unify_dictionaries().combine_chunks()
        codes = []
        for col in cols:
            arr = table.column(col).chunk(0) if table.num_rows else None
            if arr is None:
                codes.append(np.zeros(0, np.int64))
                continue
            if col not in ref:
                ref[col] = arr.dictionary
            idx = arr.indices.to_numpy().astype(np.int64)
            if not arr.dictionary.equals(ref[col]):
                # Map this row group's dictionary onto the first one's positions
                # (values unseen before are appended).
                remap = pc.index_in(arr.dictionary, value_set=ref[col]).to_numpy(
                    zero_copy_only=False
                )
                unseen = np.isnan(remap) if remap.dtype.kind == "f" else remap < 0
                if unseen.any():
                    raise RuntimeError("row groups with different id sets are not supported")
                idx = remap.astype(np.int64)[idx]
            codes.append(idx)
        keys.append(codes[0] * (1 << 32) + codes[1])
    key = np.sort(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    return int(np.count_nonzero(key[1:] != key[:-1]) + 1) if len(key) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="small", choices=sorted(SCALES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=None, help="output dir (kept); default: temp dir, removed"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each generation step")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )

    tmp = None
    out = args.out
    if out is None:
        tmp = tempfile.mkdtemp(prefix=f"synth-{args.scale}-")
        out = Path(tmp)
    try:
        t0 = time.perf_counter()
        summary = generate_platform(out, scale=args.scale, seed=args.seed)
        wall = time.perf_counter() - t0
        rss_gen = _max_rss_mib()
        t1 = time.perf_counter()
        pairs = distinct_pairs(out / "streams.parquet")
        t_pairs = time.perf_counter() - t1
        meta = json.loads((out / "_truth" / "meta.json").read_text())

        print(f"scale            {summary.scale} (seed {summary.seed})")
        print(f"elapsed          {summary.elapsed_s:.1f} s (wall {wall:.1f} s)")
        print(f"peak RSS         {rss_gen:.0f} MiB during generation")
        print("rows")
        for name, n in summary.row_counts.items():
            size = (out / f"{name}.parquet").stat().st_size / 2**20
            print(f"  {name:22s} {n:>12,d}  {size:8.1f} MiB")
        truth_size = sum(p.stat().st_size for p in (out / "_truth").iterdir()) / 2**20
        print(f"  {'_truth/':22s} {'':>12s}  {truth_size:8.1f} MiB")
        print(f"accounts         {meta['accounts']}")
        print(f"streams by kind  {meta['streams']}")
        print(f"bot share        {meta['bot_stream_share']:.2%}")
        print(f"distinct pairs   {pairs:,d} (counted in {t_pairs:.1f} s)")
        print(f"peak RSS         {_max_rss_mib():.0f} MiB overall")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
