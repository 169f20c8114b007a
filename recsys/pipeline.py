"""The offline training pipeline: contract directory in, one published artifact out.

Stages (each timed and logged, times in the manifest):

1. ``load``: check tables and columns, type-check rows, quarantine bad ones;
2. ``pool``: the trusted-pool rule, with a reason for every exclusion;
3. ``fraud``: fraud detection over all events (stream and account rules);
4. ``events``: the training rule (consent, >= 30 s, pool, not erased, not
   fraudulent: event filters plug in here);
5. ``aggregate``: user x track counts over the rows that have data;
6. ``fit``: implicit ALS on confidence-weighted counts;
7. ``vectors``: artist vectors from track vectors;
8. ``graph``: the similar-artist graph (editorial seeds, anchored learned
   relations; see :mod:`recsys.graph`);
9. ``index``: FAISS indexes over pool tracks only;
10. ``publish``: write everything to a temporary directory, checksum, rename.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd
import scipy.sparse as sp

import recsys
from recsys.artifact.publish import (
    ArtifactParts,
    compute_stored_answers,
    publish_artifact,
    retrieval_summary,
)
from recsys.artifact.store import destination_for, new_version
from recsys.config import RetrievalConfig, TrainConfig
from recsys.contract.load import ContractData, load_contract
from recsys.events import EventFilter, aggregate, select_training_events
from recsys.events.stage import EventReport, Interactions
from recsys.fraud import FraudDetector, FraudResult
from recsys.graph.review import read_review_log
from recsys.graph.stage import run_graph_stage, slim_events
from recsys.models import ALSModel, artist_vectors
from recsys.pool import Takedowns, build_pool
from recsys.pool.rules import Pool
from recsys.retrieval import StoredAnswers, VectorIndex, build_index, omp_threads

logger = logging.getLogger(__name__)


@dataclass
class StageTimer:
    """Wall-clock seconds per pipeline stage, in order."""

    times: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        logger.info("stage %s ...", name)
        try:
            yield
        finally:
            self.times[name] = round(time.perf_counter() - t0, 4)
            logger.info("stage %s done in %.2fs", name, self.times[name])


@dataclass(frozen=True)
class FlaggedRows:
    """An event filter whose answer was computed beforehand (the ``fraud`` stage)."""

    name: str
    mask: np.ndarray

    def __call__(self, data: ContractData, events: pd.DataFrame) -> np.ndarray:
        if len(events) != len(self.mask):
            raise ValueError(f"filter {self.name}: computed for another event table")
        return self.mask


@dataclass
class TrainResult:
    """What a training run produced."""

    path: Path
    manifest: dict[str, Any]


def _catalogue(data: ContractData, pool_eligible: np.ndarray) -> pd.DataFrame:
    artists = data.artists.set_index("artist_id")
    tracks = data.tracks[
        ["track_id", "artist_id", "title", "release_date", "duration_ms", "ai_disclosure"]
    ].copy()
    tracks["label_id"] = artists["label_id"].reindex(tracks["artist_id"]).to_numpy()
    tracks["in_pool"] = pool_eligible
    return tracks


@dataclass
class PreparedTraining:
    """What the stages before the fit produce (see :func:`prepare_training`)."""

    data: ContractData
    pool: Pool
    fraud: FraudResult | None
    report: EventReport
    interactions: Interactions
    #: The kept events, only the columns the graph stage reads.
    graph_events: pd.DataFrame


def prepare_training(
    data_dir: str | Path,
    config: TrainConfig,
    *,
    timer: StageTimer | None = None,
    filters: tuple[EventFilter, ...] = (),
    takedowns: Takedowns | None = None,
    erased_user_ids: frozenset[str] = frozenset(),
) -> PreparedTraining:
    """The stages before the fit: load, pool, fraud, events, aggregate.

    :func:`train` runs exactly this, and so do the evaluation runner and
    ``benchmarks/bench_train.py``, which need the matrix a training run fits.
    Parameters as in :func:`train`; ``timer`` records each stage's time.
    """
    timer = timer or StageTimer()
    with timer.stage("load"):
        data = load_contract(data_dir)
        data.quarantine.redact_users(erased_user_ids)
    with timer.stage("pool"):
        pool = build_pool(
            data.tracks,
            data.artists,
            data.labels,
            data.opt_outs,
            rules=config.pool,
            takedowns=takedowns,
        )
    fraud: FraudResult | None = None
    if config.events.detect_fraud:
        with timer.stage("fraud"):
            fraud = FraudDetector(settings=config.fraud).detect(data)
            filters = (*filters, FlaggedRows("fraud", fraud.stream_flagged))
    with timer.stage("events"):
        erased = (
            data.users["user_id"].isin(list(erased_user_ids)).to_numpy()
            if erased_user_ids
            else None
        )
        events, report = select_training_events(
            data, pool.eligible, rules=config.events, erased_users=erased, filters=filters
        )
    with timer.stage("aggregate"):
        inter = aggregate(
            events, n_users=len(data.users), n_tracks=len(data.tracks), rules=config.events
        )
        # The graph stage counts co-listening over the kept events: keep its columns only.
        graph_events = slim_events(events)
        del events
    return PreparedTraining(data, pool, fraud, report, inter, graph_events)


#: faiss's threads at import (every core, or OMP_NUM_THREADS): what the answers widen to.
_ALL_THREADS = faiss.omp_get_max_threads()


def _stored_answers_beside(
    user_index: VectorIndex,
    item_index: VectorIndex,
    user_factors: np.ndarray,
    seen: sp.csr_matrix,
    artist_factors: np.ndarray,
    rc: RetrievalConfig,
    alone: threading.Event,
) -> tuple[StoredAnswers | None, StoredAnswers | None]:
    """:func:`compute_stored_answers` on one faiss thread, on every core once ``alone`` is set.

    It runs beside the graph stage (see :func:`train`), which keeps one core
    busy; the batches searched after that stage ends get faiss's default threads.
    """
    with omp_threads(1):
        return compute_stored_answers(
            user_index,
            item_index,
            user_factors,
            seen,
            artist_factors,
            **rc.answer_kwargs(),
            n_threads=lambda: _ALL_THREADS if alone.is_set() else None,
        )


def train(
    data_dir: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    filters: tuple[EventFilter, ...] = (),
    takedowns: Takedowns | None = None,
    erased_user_ids: frozenset[str] = frozenset(),
    show_progress: bool = False,
) -> TrainResult:
    """Run the whole offline pipeline and publish one artifact.

    Parameters
    ----------
    data_dir
        Contract directory.
    out
        Artifact destination (see :func:`recsys.artifact.store.destination_for`).
    config
        Stage settings; defaults documented in :mod:`recsys.config`.
    filters
        Event filters (fraud detection) applied before aggregation.
    takedowns
        Content taken down in the state store: excluded from the pool.
    erased_user_ids
        Users erased on request: none of their events train the model.

    Returns
    -------
    TrainResult
        The published artifact's path and manifest.
    """
    config = config or TrainConfig()
    timer = StageTimer()
    t_start = time.perf_counter()
    created = dt.datetime.now(dt.UTC)
    version = new_version(created)

    prepared = prepare_training(
        data_dir,
        config,
        timer=timer,
        filters=filters,
        takedowns=takedowns,
        erased_user_ids=erased_user_ids,
    )
    data, pool, fraud, report, inter = (
        prepared.data,
        prepared.pool,
        prepared.fraud,
        prepared.report,
        prepared.interactions,
    )
    graph_events = prepared.graph_events
    del prepared
    with timer.stage("fit"):
        model = ALSModel(**config.als).fit(inter.matrix, show_progress=show_progress)
    with timer.stage("vectors"):
        counts = inter.matrix
        listeners = np.diff(counts.tocsc().indptr).astype(np.int64)
        streams = np.asarray(counts.sum(axis=0)).ravel()
        artist_rows = pd.Index(data.artists["artist_id"]).get_indexer(
            data.tracks["artist_id"].to_numpy()[inter.track_idx]
        )
        a_vectors = artist_vectors(
            model.item_factors_, artist_rows, len(data.artists), weights=np.log1p(listeners)
        )
    with timer.stage("index"):
        rc = config.retrieval
        item_ids = np.arange(len(inter.track_idx), dtype=np.int64)
        index_kw = dict(
            exact_threshold=rc.exact_threshold,
            hnsw_m=rc.hnsw_m,
            ef_construction=rc.ef_construction,
            ef_search=rc.ef_search,
            storage=rc.hnsw_storage,
        )
        user_index = build_index(model.item_factors_, item_ids, metric="ip", **index_kw)
        item_index = build_index(model.item_factors_, item_ids, metric="cosine", **index_kw)
    # The stored answers (one search per stored user and artist, faiss without the
    # GIL) run on one thread beside the graph stage, which keeps one core busy and
    # leaves the other idle: measured on the large platform, 11 s of answers after
    # the graph stage. The "answers" time is what is left once the graph is done;
    # what is left runs on every core.
    alone = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="answers") as beside:
        answers = beside.submit(
            _stored_answers_beside,
            user_index,
            item_index,
            model.user_factors_,
            inter.matrix,
            a_vectors,
            rc,
            alone,
        )
        try:
            with timer.stage("graph"):
                graph = run_graph_stage(data, pool.eligible, a_vectors, graph_events, config.graph)
                del graph_events
        finally:
            alone.set()
        with timer.stage("answers"):
            user_answers, artist_answers = answers.result()

    dest = destination_for(Path(out), version)
    t_publish = time.perf_counter()
    with timer.stage("publish"):
        tracks = _catalogue(data, pool.eligible)
        model_row = np.full(len(tracks), -1, dtype=np.int32)
        model_row[inter.track_idx] = np.arange(len(inter.track_idx), dtype=np.int32)
        tracks["model_row"] = model_row
        tracks["listeners"] = np.zeros(len(tracks), dtype=np.int64)
        tracks.loc[inter.track_idx, "listeners"] = listeners
        tracks["streams"] = np.zeros(len(tracks), dtype=np.float64)
        tracks.loc[inter.track_idx, "streams"] = streams
        artists = data.artists.copy()
        artists["label_status"] = (
            data.labels.set_index("label_id")["status"].reindex(artists["label_id"]).to_numpy()
        )
        fraud_accounts = None
        if fraud is not None:
            # Flagged accounts, for audit; erased users leave no trace here either.
            fraud_accounts = fraud.accounts.drop(columns=["user_idx"], errors="ignore")
            fraud_accounts = fraud_accounts.loc[
                ~fraud_accounts["user_id"].isin(list(erased_user_ids))
            ]
        parts = ArtifactParts(
            tracks=tracks,
            artists=artists,
            labels=data.labels,
            artist_tags=data.artist_tags,
            editorial_seeds=data.editorial_seeds,
            editorial_rejections=data.editorial_rejections,
            user_ids=data.users["user_id"].to_numpy()[inter.user_idx],
            user_factors=model.user_factors_,
            item_factors=model.item_factors_,
            artist_factors=a_vectors,
            seen=inter.matrix,
            user_index=user_index,
            item_index=item_index,
            pool_exclusions=pool.exclusions(),
            graph=graph,
            graph_reviews=read_review_log(data_dir),
            quarantine=data.quarantine,
            fraud_accounts=fraud_accounts,
            user_answers=user_answers,
            artist_answers=artist_answers,
        )
        manifest = {
            "version": version,
            "created_at": created.isoformat(),
            "engine_version": recsys.__version__,
            "data": {
                "dir": str(Path(data_dir).resolve()),
                "event_table": data.event_table,
                "window": data.data_window(),
                "input_rows": data.input_rows,
                "sources": data.sources,
            },
            "quarantine": {"total": data.quarantine.total, "by_table": data.quarantine.counts()},
            "pool": pool.summary(),
            "events": report.to_dict(),
            "fraud": fraud.summary() if fraud is not None else {"enabled": False},
            "training": {
                "model": "implicit.cpu.als.AlternatingLeastSquares",
                "params": model.get_params(),
                "users": int(inter.matrix.shape[0]),
                "items": int(inter.matrix.shape[1]),
                "pairs": int(inter.matrix.nnz),
                "fit_time_s": round(model.fit_time_s_, 4),
                "erased_users": len(erased_user_ids),
            },
            "retrieval": retrieval_summary(user_index, item_index),
            "graph": graph.summary,
            "config": config.to_dict(),
            "metrics": {},
        }

        def add_timings(m: dict[str, Any]) -> None:
            # Timings go in last: they cover everything but the checksum pass and the rename.
            now = time.perf_counter()
            m["timings_s"] = {
                **timer.times,
                "publish": round(now - t_publish, 4),
                "total": round(now - t_start, 4),
            }

        manifest = publish_artifact(dest, parts, manifest, finalize=add_timings)
    logger.info("published artifact %s at %s", version, dest)
    return TrainResult(path=dest, manifest=manifest)
