"""Synthetic artifacts of any size, without training: for load tests and tests.

Training ALS on a generated platform with a million streamed tracks takes far
too long for a benchmark, so :func:`synthetic_parts` makes the *parts* of an
artifact directly and :func:`publish_synthetic_artifact` writes them through
:func:`recsys.artifact.publish.publish_artifact`, the pipeline's own writer:
the server loads the result like any trained artifact.

What is synthetic, and how it imitates a trained model
------------------------------------------------------
* **Catalogue.** ``n_labels`` labels (all verified), ``n_artists`` artists,
  each with one of ``n_styles`` styles and a lognormal popularity;
  ``n_pool_tracks`` pool tracks spread over the artists in proportion to it
  (every artist has at least one), plus ``out_of_pool_share`` of the
  catalogue declared AI-generated and therefore outside the pool (no vector).
* **Factors** (not learned: drawn). Style centres are Gaussian; an artist's
  direction is its style's centre plus noise, a track's its artist's plus
  noise, so tracks cluster by artist and by style, like ALS item factors.
  Track norms are lognormal and grow with popularity (ALS factors of popular
  items are longer), the spread that makes inner-product HNSW search hard.
  A user's vector mixes one to three style centres plus noise.
* **Listening** (``seen``): each user streams a lognormal number of
  distinct tracks (mean ``mean_seen``), drawn by popularity within their
  styles (mostly their first), plus one listener for every track that would
  otherwise have none (in a trained artifact every model item has data).
  ``listeners`` and ``streams`` are counted from it.
* **Artist vectors** are the listener-weighted means of their tracks'
  vectors, as :func:`recsys.models.artist_vectors` makes them in training.
* **Similar-artist graph**: built by :func:`recsys.graph.build.build_graph`
  from the artist vectors, synthetic editorial seeds (artists of one style)
  and the co-listening of the first ``graph_users`` users' profiles.
* **Indexes**: :func:`recsys.retrieval.build_index` with the training
  defaults (:class:`recsys.config.RetrievalConfig`): HNSW above
  ``exact_threshold`` items.

Nothing here measures recommendation quality; the factors only have the
shape, clustering and norm spread of real ones, so that serving does the
same work as on a trained artifact of that size.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

import recsys
from recsys.artifact.publish import ArtifactParts, compute_stored_answers, publish_artifact
from recsys.artifact.store import new_version
from recsys.config import DEFAULT_ALS, RetrievalConfig
from recsys.graph.build import GraphInputs, build_graph
from recsys.graph.config import GraphConfig
from recsys.models import ALSModel, artist_vectors
from recsys.retrieval import build_index
from recsys.synth.generator import WINDOW_END
from recsys.synth.vocab import ADJECTIVES, GENERIC_TAGS, NOUNS, STYLES

logger = logging.getLogger(__name__)

#: Reason recorded for the synthetic out-of-pool tracks.
OUT_OF_POOL_REASON = "ai_generated_declared"


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """Size and shape of a synthetic artifact.

    Parameters
    ----------
    n_pool_tracks
        Model items: pool tracks with a vector.
    n_artists, n_users, n_labels
        Defaults: one artist per 20 pool tracks, one user per 10, one label
        per 25 artists (1M tracks: 50K artists, 100K users, 2K labels).
    factors
        Vector dimension.
    n_styles
        Clusters of the vectors.
    out_of_pool_share
        Share of the catalogue outside the pool.
    mean_seen
        Mean distinct tracks streamed per user.
    seed_share
        Share of artists given editorial seeds (one to three each).
    graph_users
        Users whose profiles feed the graph's co-listening (bounds its cost).
    seed
        Random seed: the same spec always gives the same parts.
    """

    n_pool_tracks: int
    n_artists: int | None = None
    n_users: int | None = None
    n_labels: int | None = None
    factors: int = 64
    n_styles: int = 64
    out_of_pool_share: float = 0.05
    mean_seen: float = 40.0
    seed_share: float = 0.1
    graph_users: int = 20_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_pool_tracks < 2 or self.factors < 1 or self.n_styles < 1:
            raise ValueError("need n_pool_tracks >= 2, factors >= 1, n_styles >= 1")
        if not 0.0 <= self.out_of_pool_share < 1.0 or self.mean_seen < 1:
            raise ValueError("out_of_pool_share must be in [0, 1), mean_seen >= 1")

    @property
    def artists(self) -> int:
        return int(self.n_artists or max(2, self.n_pool_tracks // 20))

    @property
    def users(self) -> int:
        return int(self.n_users or max(2, self.n_pool_tracks // 10))

    @property
    def labels(self) -> int:
        return int(self.n_labels or max(1, self.artists // 25))


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    adj = ADJECTIVES[rng.integers(0, len(ADJECTIVES), n)]
    noun = NOUNS[rng.integers(0, len(NOUNS), n)]
    return np.array([f"{a} {b}" for a, b in zip(adj.tolist(), noun.tolist(), strict=True)], object)


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _sample_within(
    rng: np.random.Generator,
    group_of: np.ndarray,
    weight: np.ndarray,
    groups: np.ndarray,
    n_groups: int,
) -> np.ndarray:
    """For each entry of ``groups``, one item of that group drawn by ``weight``.

    Parameters
    ----------
    group_of, weight
        Group and weight of every item, shape (n_items,).
    groups
        Requested groups, shape (m,); each must hold at least one item.

    Returns
    -------
    ndarray
        Item rows, shape (m,).
    """
    order = np.argsort(group_of, kind="stable")
    cum = np.cumsum(weight[order].astype(np.float64))
    first = np.searchsorted(group_of[order], np.arange(n_groups), side="left")
    last = np.searchsorted(group_of[order], np.arange(n_groups), side="right") - 1
    lo = np.where(first > 0, cum[np.maximum(first - 1, 0)], 0.0)
    hi = cum[np.maximum(last, 0)]
    u = lo[groups] + rng.random(len(groups)) * (hi[groups] - lo[groups])
    pos = np.searchsorted(cum, u, side="right")
    pos = np.clip(pos, first[groups], last[groups])
    return order[pos]


def synthetic_parts(
    spec: SyntheticSpec,
    *,
    retrieval: RetrievalConfig | None = None,
    graph: GraphConfig | None = None,
) -> tuple[ArtifactParts, dict[str, Any]]:
    """The parts of a synthetic artifact, and its manifest sections.

    Parameters
    ----------
    spec
        Sizes and shape (see :class:`SyntheticSpec`).
    retrieval
        Index settings; the training defaults when ``None``.
    graph
        Graph settings; the training defaults when ``None``.

    Returns
    -------
    parts : ArtifactParts
    sections : dict
        Manifest sections describing the synthetic data (``data``, ``pool``,
        ``training``, ``config``...), without ``version``/``created_at``.
    """
    retrieval = retrieval or RetrievalConfig()
    graph = graph or GraphConfig()
    rng = np.random.default_rng(spec.seed)
    t0 = time.perf_counter()
    n_items, n_art, n_users, n_lab = spec.n_pool_tracks, spec.artists, spec.users, spec.labels
    d, n_styles = spec.factors, spec.n_styles
    n_extra = int(round(n_items * spec.out_of_pool_share / (1.0 - spec.out_of_pool_share)))

    # ---- labels and artists ------------------------------------------------------
    label_ids = _ids("L", n_lab, 6)
    labels = pd.DataFrame({"label_id": label_ids, "name": _names(rng, n_lab), "status": "verified"})
    artist_ids = _ids("A", n_art, 7)
    artist_label = rng.integers(0, n_lab, n_art)
    artist_style = rng.integers(0, n_styles, n_art)
    artist_pop = rng.lognormal(0.0, 1.5, n_art)
    artists = pd.DataFrame(
        {
            "artist_id": artist_ids,
            "name": _names(rng, n_art),
            "label_id": label_ids[artist_label],
            "verified": True,
            "label_status": "verified",
        }
    )

    # ---- pool tracks: artists, popularity, vectors ---------------------------------
    if n_items < n_art:
        raise ValueError("need at least one pool track per artist")
    per_artist = 1 + rng.multinomial(n_items - n_art, artist_pop / artist_pop.sum())
    item_artist = rng.permutation(np.repeat(np.arange(n_art), per_artist))
    item_pop = artist_pop[item_artist] * rng.lognormal(0.0, 1.0, n_items)
    centres = rng.standard_normal((n_styles, d)).astype(np.float32)
    artist_dir = _unit(
        centres[artist_style] + 0.6 * rng.standard_normal((n_art, d), dtype=np.float32)
    )
    item_factors = np.empty((n_items, d), dtype=np.float32)
    log_pop = np.log(item_pop)
    z = (log_pop - log_pop.mean()) / (log_pop.std() or 1.0)
    norms = (0.5 * np.exp(0.5 * z + 0.25 * rng.standard_normal(n_items))).astype(np.float32)
    step = 1 << 16  # in chunks: no (n, d) float64 temporaries
    for s in range(0, n_items, step):
        e = min(n_items, s + step)
        block = artist_dir[item_artist[s:e]] + 0.35 * rng.standard_normal(
            (e - s, d), dtype=np.float32
        )
        item_factors[s:e] = _unit(block) * norms[s:e, None]
    user_styles = rng.integers(0, n_styles, (n_users, 3))
    n_user_styles = rng.integers(1, 4, n_users)
    style_weights = np.where(np.arange(3)[None, :] < n_user_styles[:, None], 1.0, 0.0)
    style_weights[:, 0] += 1.0  # the first style dominates
    user_factors = np.zeros((n_users, d), dtype=np.float32)
    for j in range(3):
        user_factors += (style_weights[:, j : j + 1] * centres[user_styles[:, j]]).astype(
            np.float32
        )
    user_factors = _unit(user_factors + 0.5 * rng.standard_normal((n_users, d), dtype=np.float32))
    user_factors *= rng.lognormal(0.0, 0.3, (n_users, 1)).astype(np.float32)

    # ---- listening ---------------------------------------------------------------
    n_seen = np.clip(rng.lognormal(np.log(spec.mean_seen) - 0.5, 1.0, n_users), 1, 2000).astype(
        np.int64
    )
    ev_user = np.repeat(np.arange(n_users), n_seen)
    pick = rng.random(len(ev_user))
    slot = np.where(pick < 0.6, 0, np.where(pick < 0.8, 1, 2))
    slot = np.minimum(slot, n_user_styles[ev_user] - 1)
    ev_style = user_styles[ev_user, slot]
    roam = rng.random(len(ev_user)) < 0.1  # some listening outside the user's styles
    ev_style[roam] = rng.integers(0, n_styles, int(roam.sum()))
    item_style = artist_style[item_artist]
    present = np.bincount(item_style, minlength=n_styles) > 0
    ev_style = np.where(present[ev_style], ev_style, item_style[rng.integers(0, n_items, 1)[0]])
    ev_item = _sample_within(rng, item_style, item_pop, ev_style, n_styles)
    # Every model item has at least one listener (training only indexes tracks with data).
    keys = np.unique(ev_user * np.int64(n_items) + ev_item)
    heard = np.zeros(n_items, dtype=bool)
    heard[keys % n_items] = True
    lonely = np.flatnonzero(~heard)
    extra_users = rng.integers(0, n_users, len(lonely))
    keys = np.unique(np.r_[keys, extra_users * np.int64(n_items) + lonely])
    rows, cols = keys // n_items, keys % n_items
    seen = sp.csr_matrix(
        (np.ones(len(keys), dtype=np.float32), (rows, cols)), shape=(n_users, n_items)
    )
    listeners = np.bincount(cols, minlength=n_items).astype(np.int64)
    streams = listeners * (1.0 + rng.gamma(1.5, 2.0, n_items)).round()

    # ---- catalogue -----------------------------------------------------------------
    n_cat = n_items + n_extra
    track_artist = np.r_[item_artist, rng.integers(0, n_art, n_extra)]
    order = rng.permutation(n_cat)  # pool and out-of-pool tracks interleaved
    model_row = np.full(n_cat, -1, dtype=np.int32)
    in_pool = np.zeros(n_cat, dtype=bool)
    model_row[order[:n_items]] = np.arange(n_items, dtype=np.int32)
    in_pool[order[:n_items]] = True
    cat_artist = np.empty(n_cat, dtype=np.int64)
    cat_artist[order] = track_artist
    cat_listeners = np.zeros(n_cat, dtype=np.int64)
    cat_listeners[order[:n_items]] = listeners
    cat_streams = np.zeros(n_cat, dtype=np.float64)
    cat_streams[order[:n_items]] = streams
    end = np.datetime64(WINDOW_END.replace(tzinfo=None), "D")
    release = end - rng.integers(1, 3650, n_cat).astype("timedelta64[D]")
    track_ids = _ids("T", n_cat, 8)
    tracks = pd.DataFrame(
        {
            "track_id": track_ids,
            "artist_id": artist_ids[cat_artist],
            "title": _names(rng, n_cat),
            "release_date": release.astype("datetime64[ms]"),
            "duration_ms": rng.integers(90_000, 420_000, n_cat),
            "ai_disclosure": np.where(in_pool, "none", "generated").astype(object),
            "label_id": label_ids[artist_label[cat_artist]],
            "in_pool": in_pool,
            "model_row": model_row,
            "listeners": cat_listeners,
            "streams": cat_streams,
        }
    )
    exclusions = pd.DataFrame({"track_id": track_ids[~in_pool], "reasons": OUT_OF_POOL_REASON})

    # ---- tags, editorial tables ------------------------------------------------------
    style_names = np.array([s.name for s in STYLES], dtype=object)
    generic = np.array(GENERIC_TAGS, dtype=object)
    tags = pd.DataFrame(
        {
            "artist_id": np.r_[artist_ids, artist_ids],
            "tag": np.r_[
                style_names[artist_style % len(style_names)],
                generic[rng.integers(0, len(generic), n_art)],
            ],
            "weight": np.r_[np.full(n_art, 0.8), np.full(n_art, 0.2)],
        }
    )
    n_seeded = int(round(spec.seed_share * n_art))
    seeded = rng.choice(n_art, n_seeded, replace=False) if n_seeded else np.zeros(0, np.int64)
    per_seed = rng.integers(1, 4, n_seeded)
    seed_a = np.repeat(seeded, per_seed)
    seed_b = _sample_within(rng, artist_style, artist_pop, artist_style[seed_a], n_styles)
    keep = seed_a != seed_b
    seed_a, seed_b = seed_a[keep], seed_b[keep]
    stamp = pd.Timestamp(WINDOW_END) - pd.Timedelta(days=30)
    seeds = pd.DataFrame(
        {
            "artist_id": artist_ids[seed_a],
            "similar_artist_id": artist_ids[seed_b],
            "editor": "editor.synthetic",
            "created_at": stamp,
        }
    ).drop_duplicates(["artist_id", "similar_artist_id"], ignore_index=True)
    n_rej = min(len(seeds), max(1, n_art // 500))
    rejections = pd.DataFrame(
        {
            "artist_id": artist_ids[rng.integers(0, n_art, n_rej)],
            "similar_artist_id": artist_ids[rng.integers(0, n_art, n_rej)],
            "editor": "editor.synthetic",
            "created_at": stamp,
        }
    )
    logger.info(
        "synthetic catalogue: %d tracks (%d in the pool), %d artists, %d users, %d seen pairs "
        "in %.1fs",
        n_cat,
        n_items,
        n_art,
        n_users,
        seen.nnz,
        time.perf_counter() - t0,
    )

    # ---- artist vectors, graph, indexes ----------------------------------------------
    a_vectors = artist_vectors(item_factors, item_artist, n_art, weights=np.log1p(listeners))
    g_rows = rows < spec.graph_users
    built = build_graph(
        GraphInputs(
            artist_ids=artist_ids,
            pool_artist=np.ones(n_art, dtype=bool),
            artist_factors=a_vectors,
            event_user=rows[g_rows],
            event_artist=item_artist[cols[g_rows]],
            event_ts_ms=None,
            event_weight=None,
            seeds=seeds,
            rejections=rejections,
        ),
        graph,
    )
    index_kw = dict(
        exact_threshold=retrieval.exact_threshold,
        hnsw_m=retrieval.hnsw_m,
        ef_construction=retrieval.ef_construction,
        ef_search=retrieval.ef_search,
        storage=retrieval.hnsw_storage,
    )
    ids = np.arange(n_items, dtype=np.int64)
    user_index = build_index(item_factors, ids, metric="ip", **index_kw)
    item_index = build_index(item_factors, ids, metric="cosine", **index_kw)
    user_answers, artist_answers = compute_stored_answers(
        user_index, item_index, user_factors, seen, a_vectors, **retrieval.answer_kwargs()
    )

    parts = ArtifactParts(
        tracks=tracks,
        artists=artists,
        labels=labels,
        artist_tags=tags,
        editorial_seeds=seeds,
        editorial_rejections=rejections,
        user_ids=_ids("u", n_users, 7),
        user_factors=user_factors,
        item_factors=item_factors,
        artist_factors=a_vectors,
        seen=seen,
        user_index=user_index,
        item_index=item_index,
        pool_exclusions=exclusions,
        graph=built,
        user_answers=user_answers,
        artist_answers=artist_answers,
    )
    sections = {
        "engine_version": recsys.__version__,
        "data": {
            "synthetic": True,
            "generator": "recsys.synth.artifact",
            "spec": dataclasses.asdict(spec),
            "window": {
                "start": (WINDOW_END - dt.timedelta(days=90)).isoformat(),
                "end": WINDOW_END.isoformat(),
            },
        },
        "quarantine": {"total": 0, "by_table": {}},
        "pool": {
            "tracks": n_cat,
            "eligible": n_items,
            "excluded": n_extra,
            "excluded_by_reason": {OUT_OF_POOL_REASON: n_extra},
        },
        "fraud": {"enabled": False},
        "training": {
            "model": "synthetic factors (not trained)",
            # The training defaults, for what reads them (fold-in's weighting).
            "params": ALSModel(**{**DEFAULT_ALS, "factors": d}).get_params(),
            "users": n_users,
            "items": n_items,
            "pairs": int(seen.nnz),
        },
        "config": {"retrieval": dataclasses.asdict(retrieval), "graph": dataclasses.asdict(graph)},
        "metrics": {},
    }
    logger.info("synthetic artifact parts ready in %.1fs", time.perf_counter() - t0)
    return parts, sections


def publish_synthetic_artifact(
    dest: str | Path,
    spec: SyntheticSpec,
    *,
    retrieval: RetrievalConfig | None = None,
    graph: GraphConfig | None = None,
) -> dict[str, Any]:
    """Make a synthetic artifact (:func:`synthetic_parts`) and publish it at ``dest``.

    Returns
    -------
    dict
        The manifest as written.
    """
    t0 = time.perf_counter()
    parts, sections = synthetic_parts(spec, retrieval=retrieval, graph=graph)
    created = dt.datetime.now(dt.UTC)
    manifest = {"version": new_version(created), "created_at": created.isoformat(), **sections}
    build_s = round(time.perf_counter() - t0, 4)

    def add_timings(m: dict[str, Any]) -> None:
        m["timings_s"] = {"build": build_s, "total": round(time.perf_counter() - t0, 4)}

    return publish_artifact(dest, parts, manifest, finalize=add_timings)
