"""The ``recsys`` command line: a thin shell over the library.

Commands: ``generate``, ``train``, ``recommend``, ``serve``, ``demo``,
``import-lastfm``, ``review export`` / ``review import``. See ``shared/spec/interfaces.md`` and the README.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

# implicit warns and runs up to 10x slower when OpenBLAS spawns its own threads
# inside its workers; set before numpy is imported anywhere.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from recsys.errors import RecsysError  # noqa: E402

if TYPE_CHECKING:
    from serving.settings import ServiceSettings

logger = logging.getLogger("recsys.cli")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from recsys.synth import generate_platform

    summary = generate_platform(args.out, scale=args.scale, seed=args.seed)
    logger.info(
        "generated %s platform in %s (%.1fs): %s",
        summary.scale,
        summary.out_dir,
        summary.elapsed_s,
        summary.row_counts,
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from training.pipeline import run_training

    result = run_training(
        args.data, args.out, config_path=args.config, state_path=args.state, show_progress=True
    )
    m = result.manifest
    logger.info(
        "artifact %s at %s: %d users x %d items, pool %d of %d tracks, %d rows quarantined",
        m["version"],
        result.path,
        m["training"]["users"],
        m["training"]["items"],
        m["pool"]["eligible"],
        m["pool"]["tracks"],
        m["quarantine"]["total"],
    )
    print(json.dumps({"artifact": str(result.path), "version": m["version"]}))
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from recsys.surfaces.engine import Engine

    engine = Engine.load(args.artifact)
    users = [line.strip() for line in Path(args.users).read_text().splitlines() if line.strip()]
    out = open(args.out, "w") if args.out else sys.stdout  # noqa: SIM115
    t0 = time.perf_counter()
    try:
        batch = 4096
        for start in range(0, len(users), batch):
            for rec in engine.recommender.for_users(users[start : start + batch], args.k):
                line = {
                    "user_id": rec.user_id,
                    "personalized": rec.personalized,
                    "items": [
                        {
                            "track_id": it.track_id,
                            "artist_id": it.artist_id,
                            "score": round(it.score, 6),
                            "reason": it.reason.text,
                        }
                        for it in rec.items
                    ],
                }
                out.write(json.dumps(line) + "\n")
    finally:
        if args.out:
            out.close()
    logger.info("recommended for %d users in %.2fs", len(users), time.perf_counter() - t0)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import datetime as dt

    from recsys.config import load_config
    from recsys.contract.load import load_contract
    from recsys.fraud import FraudDetector
    from recsys.report import stream_report

    def day(text: str | None) -> dt.date | None:
        return dt.date.fromisoformat(text) if text else None

    config = load_config(args.config)
    data = load_contract(args.data)
    # Detection sees all the data: context outside the period (a loop that
    # started earlier) still counts.
    fraud = FraudDetector(settings=config.fraud).detect(data)
    report = stream_report(
        data,
        fraud.stream_reason,
        fraud.reason_names,
        since=day(args.since),
        until=day(args.until),
        rules_run=fraud.rules_run,
    )
    report.write(args.out)
    totals = report.totals()
    logger.info(
        "stream report in %s: %d counted = %d eligible + %d excluded %s",
        args.out,
        totals["counted"],
        totals["eligible"],
        totals["excluded"],
        totals["excluded_by_reason"],
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recsys.config import load_config
    from recsys.evaluation.runner import evaluate

    report = evaluate(
        args.data,
        protocol=args.protocol,
        seeds=args.seeds,
        k=args.k,
        config=load_config(args.config),
        with_ease=not args.no_ease,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=float))
    else:
        print(report.table())
        for note in report.notes:
            print(f"note: {note}")
    return 0


def cmd_exposure(args: argparse.Namespace) -> int:
    import numpy as np

    from recsys.evaluation.exposure import exposure_report
    from recsys.surfaces.engine import Engine

    engine = Engine.load(args.artifact)
    art = engine.artifact
    users = (
        [u.strip() for u in Path(args.users).read_text().splitlines() if u.strip()]
        if args.users
        else [str(u) for u in art.user_ids]
    )
    top = np.full((len(users), args.k), -1, dtype=np.int64)
    for start in range(0, len(users), 4096):
        for i, rec in enumerate(engine.recommender.for_users(users[start : start + 4096], args.k)):
            rows = art.track_rows([it.track_id for it in rec.items])
            top[start + i, : len(rows)] = rows
    report = exposure_report(art, top)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in report.tables().items():
        frame.to_csv(out / f"{name}.csv", index=False)
        frame.to_parquet(out / f"{name}.parquet", index=False)
    (out / "summary.json").write_text(json.dumps(report.summary, indent=2))
    for name, frame in report.tables().items():
        print(f"\n{name}\n{frame.to_string(index=False, float_format=lambda x: f'{x:.4f}')}")
    print("\n" + json.dumps(report.summary, indent=2))
    return 0


#: glibc's malloc tunable that puts large allocations on transparent huge pages.
_HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"


def _huge_pages_available() -> bool:
    """Whether this is Linux with transparent huge pages on (``always`` or ``madvise``)."""
    try:
        mode = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False
    return "[never]" not in mode


def _reexec_with_huge_pages(argv: list[str]) -> None:
    """Start this command again with glibc's huge-page tunable, unless it is already set.

    Why: an HNSW search over a 1M-track index is bound by memory latency (random
    reads across about 1 GB of vectors and graph), and with 4 KiB pages most of
    them also miss the TLB. faiss allocates its indexes with ``malloc``; with
    ``glibc.malloc.hugetlb=1`` glibc marks large allocations ``MADV_HUGEPAGE``
    before they are touched, so the indexes land on 2 MiB pages. Measured on the
    1M pool (docs/serving.md): cold searches 24 % faster. The tunable is read when
    the process starts, hence the re-exec. Other C libraries ignore it.
    """
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in tunables or not _huge_pages_available():
        return
    env = dict(os.environ)
    env["GLIBC_TUNABLES"] = f"{tunables}:{_HUGE_PAGES_TUNABLE}" if tunables else _HUGE_PAGES_TUNABLE
    logger.info("restarting with %s (transparent huge pages for the indexes)", _HUGE_PAGES_TUNABLE)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "training.cli", *argv], env)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from serving.settings import ServiceSettings

    # Everything not given on the command line comes from RECSYS_* variables.
    given = {"workers": args.workers} if getattr(args, "workers", None) else {}
    settings = ServiceSettings(artifact=args.artifact, host=args.host, port=args.port, **given)
    if settings.huge_pages and args.raw_argv is not None:
        _reexec_with_huge_pages(args.raw_argv)
    own_metrics_dir = None
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Before prometheus_client is imported: the workers' metrics go to files there,
        # and every worker's /metrics adds them all up (serving/metrics.py).
        import tempfile

        own_metrics_dir = tempfile.mkdtemp(prefix="recsys-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_metrics_dir
    elif settings.workers > 1:
        # A directory given: prometheus_client writes into it but does not make it.
        Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    from serving.app import create_app
    from serving.metrics import JsonFormatter

    if settings.log_json:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    if settings.admin_token is None:
        logger.warning("RECSYS_ADMIN_TOKEN is not set: admin routes are disabled")
    logger.info("state file %s", settings.state_path.resolve())
    if settings.workers > 1:
        try:
            return _serve_workers(settings)
        finally:
            if own_metrics_dir is not None:  # never a directory the caller gave
                import shutil

                shutil.rmtree(own_metrics_dir, ignore_errors=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep this process's logging (JSON lines)
        access_log=False,  # the service writes its own structured access log
    )
    return 0


def _serve_workers(settings: ServiceSettings) -> int:
    """``recsys serve --workers N``: load once, fork N workers (serving/workers.py)."""
    from prometheus_client import multiprocess

    from recsys.state import StateStore
    from serving.app import create_app
    from serving.holder import EngineHolder, prepare_allocators, release_memory
    from serving.metrics import multiprocess_dir, reload_gauge
    from serving.workers import Supervisor

    if settings.artifact is None:
        raise SystemExit("--workers needs an artifact to load")
    prepare_allocators(settings.mmap_threshold)
    holder = EngineHolder(StateStore(settings.state_path), settings.artifact, release_dropped=False)
    holder.load_initial()
    metrics_dir = multiprocess_dir()
    reloads = reload_gauge(None) if metrics_dir else None  # the supervisor's own samples

    def reload() -> tuple[bool, str]:
        try:
            return holder.request_reload()  # the supervisor's holder reloads itself
        finally:
            if reloads is not None:
                for result, n in holder.reloads.items():
                    reloads.labels(result=result).set(n)

    def exited(pid: int) -> None:
        if metrics_dir:
            multiprocess.mark_process_dead(pid)  # its gauges leave the live ones

    def newer() -> bool:
        engine = holder.engine
        return engine is None or holder.newest_version() != engine.version

    Supervisor(
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        # Runs in each new worker: the engine the supervisor holds at the fork.
        make_app=lambda link: create_app(settings, engine=holder.engine, link=link),
        reload=reload,
        watch=newer,
        watch_interval_s=settings.watch_interval_s,
        on_exit=exited,
        before_fork=release_memory,
    ).run()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from recsys.synth import generate_platform
    from training.pipeline import run_training

    base = Path(args.dir)
    data = base / "data"
    # The demo keeps its takedowns and erasures beside its data, for serve and retrain alike.
    os.environ.setdefault("RECSYS_STATE_PATH", str(base / "state.sqlite"))
    if not (data / "tracks.parquet").exists():
        generate_platform(data, scale=args.scale, seed=args.seed)
    result = run_training(data, base / "artifacts", show_progress=True)
    users = __import__("pandas").read_parquet(result.path / "model/users.parquet")["user_id"]
    example = users.iloc[0] if len(users) else "u0000001"
    url = f"http://{args.host}:{args.port}"
    logger.info("demo ready: try\n  curl '%s/v1/users/%s/recommendations?k=10'", url, example)
    if args.no_serve:
        return 0
    args.artifact = str(base / "artifacts")
    args.raw_argv = None  # a restart would train again; the demo's small indexes gain nothing
    return cmd_serve(args)


def cmd_import_lastfm(args: argparse.Namespace) -> int:
    from recsys.contract.lastfm import convert_lastfm

    counts = convert_lastfm(Path(args.src), Path(args.out))
    logger.info("wrote contract directory %s: %s", args.out, counts)
    return 0


def cmd_review_export(args: argparse.Namespace) -> int:
    from recsys.graph.review import export_review

    rows = export_review(args.artifact, args.out, n=args.n)
    logger.info("wrote %d learned relations for review to %s", len(rows), args.out)
    return 0


def cmd_review_import(args: argparse.Namespace) -> int:
    from recsys.graph.review import import_review

    report = import_review(args.file, args.data)
    print(json.dumps(report.to_dict()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recsys", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write a synthetic platform in the data contract")
    g.add_argument("--out", required=True)
    g.add_argument("--scale", default="small", choices=["tiny", "small", "medium", "large"])
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_generate)

    t = sub.add_parser("train", help="validate, build the pool, train, index, publish an artifact")
    t.add_argument("--data", required=True, help="contract directory")
    t.add_argument("--out", required=True, help="artifact directory (or a directory of them)")
    t.add_argument("--config", help="TOML or JSON file overriding stage settings")
    t.add_argument(
        "--state", help="SQLite state file of takedowns and erasures (default: $RECSYS_STATE_PATH)"
    )
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("recommend", help="batch recommendations, one JSON line per user")
    r.add_argument("--artifact", required=True)
    r.add_argument("--users", required=True, help="file with one user id per line")
    r.add_argument("--k", type=int, default=20)
    r.add_argument("--out", help="output file (default: stdout)")
    r.set_defaults(func=cmd_recommend)

    rp = sub.add_parser(
        "report", help="stream report per track, artist and label: counted, excluded, eligible"
    )
    rp.add_argument("--data", required=True, help="contract directory")
    rp.add_argument("--out", required=True, help="output directory (Parquet + CSV)")
    rp.add_argument("--since", help="first day of the period (YYYY-MM-DD, inclusive)")
    rp.add_argument("--until", help="last day of the period (YYYY-MM-DD, inclusive)")
    rp.add_argument("--config", help="TOML or JSON file; its [fraud] section sets thresholds")
    rp.set_defaults(func=cmd_report)

    ev = sub.add_parser("evaluate", help="train on a split; the engine against baselines")
    ev.add_argument("--data", required=True, help="contract directory")
    ev.add_argument("--protocol", default="random", choices=["random", "last", "users"])
    ev.add_argument("--seeds", type=int, nargs="+", default=[0])
    ev.add_argument("--k", type=int, default=20)
    ev.add_argument("--config", help="TOML or JSON stage settings")
    ev.add_argument("--no-ease", action="store_true", help="skip EASE (dense item x item inverse)")
    ev.add_argument("--json", action="store_true", help="machine-readable output")
    ev.set_defaults(func=cmd_evaluate)

    ex = sub.add_parser("exposure", help="exposure of recommendations vs streams, by group")
    ex.add_argument("--artifact", required=True)
    ex.add_argument("--out", required=True, help="output directory (CSV + Parquet + summary.json)")
    ex.add_argument("--users", help="file of user ids (default: every model user)")
    ex.add_argument("--k", type=int, default=20)
    ex.set_defaults(func=cmd_exposure)

    s = sub.add_parser("serve", help="the HTTP service")
    s.add_argument("--artifact", required=True)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes sharing one loaded artifact (default: RECSYS_WORKERS, else 1)",
    )
    s.set_defaults(func=cmd_serve)

    d = sub.add_parser("demo", help="generate a small platform, train, serve it")
    d.add_argument("--dir", default="demo")
    d.add_argument("--scale", default="small", choices=["tiny", "small", "medium"])
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8000)
    d.add_argument("--no-serve", action="store_true", help="stop after training")
    d.set_defaults(func=cmd_demo)

    lf = sub.add_parser("import-lastfm", help="map the Last.fm HetRec data to the contract")
    lf.add_argument("--src", required=True)
    lf.add_argument("--out", required=True)
    lf.set_defaults(func=cmd_import_lastfm)

    rv = sub.add_parser("review", help="human review of learned similar-artist relations")
    rv_sub = rv.add_subparsers(dest="review_command", required=True)
    rve = rv_sub.add_parser("export", help="write the strongest unreviewed learned relations")
    rve.add_argument("--artifact", required=True)
    rve.add_argument("--out", required=True, help="CSV file for the editors")
    rve.add_argument("--n", type=int, default=200, help="most relations to export")
    rve.set_defaults(func=cmd_review_export)
    rvi = rv_sub.add_parser("import", help="apply editors' decisions to a contract directory")
    rvi.add_argument("file", help="the reviewed CSV (decision, editor, decided_at columns)")
    rvi.add_argument("--data", required=True, help="contract directory to update")
    rvi.set_defaults(func=cmd_review_import)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # What to run again if `serve` restarts itself (see _reexec_with_huge_pages).
    args.raw_argv = list(sys.argv[1:] if argv is None else argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except RecsysError as exc:
        logger.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
