"""Build the similar-artist graph: editorial relations first, learned ones anchored to them.

Method (parameters in :class:`recsys.graph.config.GraphConfig`, figures in
``docs/graph.md``):

1. **Editorial relations.** Every ``editorial_seeds`` pair (undirected) that
   no ``editorial_rejections`` row refuses becomes a relation in both
   directions, pointing only at artists still in the pool. Provenance
   ``editorial``, or ``learned, reviewed`` for a seed that an editor
   approved from a learned suggestion (:mod:`recsys.graph.review`).
2. **Learned score.** From first-party training data only, between pool
   artists with at least ``min_artist_listeners`` distinct listeners:
   ``s = (1 - w) * max(cos, 0) + w * min(1, o / o_ref)``, with ``cos`` the
   cosine of the ALS artist vectors, ``o`` the shrunk co-listening cosine
   ``c / sqrt(n_a n_b) * c / (c + shrinkage)`` (``c`` distinct accounts
   that co-listened the pair in one session, ``n`` distinct listeners), and
   ``o_ref`` its 95th percentile (so both terms span [0, 1]). Candidates are
   each artist's ``vector_candidates`` nearest artists by cosine plus every
   pair with at least ``min_shared_listeners`` co-listeners; a relation needs
   ``s >= min_learned_score`` and ``cos >= min_vector_similarity``.
3. **Anchoring.** A truncated personalised PageRank from each artist over
   editorial relations plus the learned ``knn``-nearest-neighbour graph
   (:mod:`recsys.graph.anchor`), counted from its second step, scores how
   strongly the artist's editorial neighbourhood reaches each candidate. A
   learned relation ranks by ``(1 - a) * s / max s + a * p / max p`` (per
   artist) and is kept when that reaches ``min_anchored_score`` and its
   target lies within ``max_seed_hops`` of a seeded artist along other
   artists' edges.
4. **Never served.** Rejected pairs, out-of-pool targets, learned relations
   touching an artist outside the pool.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.graph._arrays import unique
from recsys.graph.anchor import seed_distance, walk_matrix, walk_scores
from recsys.graph.colisten import co_listening
from recsys.graph.config import GraphConfig

logger = logging.getLogger(__name__)

EDITORIAL = "editorial"
LEARNED = "learned"
REVIEWED = "learned, reviewed"
#: Every provenance a relation can carry, editorial ones first.
PROVENANCES = (EDITORIAL, REVIEWED, LEARNED)
#: Score shown for an editorial relation (learned scores lie in [0, 1) below it).
EDITORIAL_SCORE = 1.0
#: Chunk of artists whose vector similarities are computed at once.
_SIM_CHUNK = 1024
#: Pairs whose cosines are computed at once: (chunk, d) gathers that stay in cache
#: (4 MB at d = 128) instead of two (n_pairs, d) copies of the vectors (4 GB each
#: at the 8M candidates of the ``large`` platform: 25 s, mostly page faults).
_DOT_CHUNK = 8192

RELATION_COLUMNS = (
    "artist_id",
    "similar_artist_id",
    "rank",
    "score",
    "provenance",
    "learned_score",
    "vector_similarity",
    "shared_listeners",
    "walk_score",
    "seed_distance",
)


@dataclass
class GraphInputs:
    """What the graph stage reads from a training run.

    Attributes
    ----------
    artist_ids
        Shape (n_artists,), the artist table's ids (rows as in the artifact).
    pool_artist
        Boolean, shape (n_artists,): the artist has at least one pool track.
    artist_factors
        Shape (n_artists, d): ALS artist vectors (zero rows: no data).
    event_user, event_artist
        Training events after every filter (consent, length, pool, fraud):
        account and artist rows, shape (n_events,).
    event_ts_ms
        Event time in ms, shape (n_events,); ``None`` for ``plays`` data.
    event_weight
        Plays per event, shape (n_events,); ``None``: one each.
    seeds, rejections
        ``editorial_seeds`` and ``editorial_rejections`` frames.
    reviewed
        Undirected ``(artist_id, similar_artist_id)`` pairs that entered the
        seeds through human review of a learned suggestion.
    """

    artist_ids: np.ndarray
    pool_artist: np.ndarray
    artist_factors: np.ndarray
    event_user: np.ndarray
    event_artist: np.ndarray
    event_ts_ms: np.ndarray | None
    event_weight: np.ndarray | None
    seeds: pd.DataFrame
    rejections: pd.DataFrame
    reviewed: frozenset[tuple[str, str]] = frozenset()


@dataclass
class GraphBuild:
    """The built graph.

    Attributes
    ----------
    relations
        One row per directed relation, columns :data:`RELATION_COLUMNS`,
        grouped by ``artist_id`` in ``rank`` order (1 = most similar).
    artists
        Per artist: ``artist_id``, ``in_pool``, ``listeners`` (distinct
        training accounts), ``seeded`` (has an editorial relation in the
        pool), ``seed_distance`` (-1: beyond ``max_seed_hops``).
    summary
        For the manifest: relations per provenance, parameters, counts.
    """

    relations: pd.DataFrame
    artists: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def _pair_rows(frame: pd.DataFrame, index: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Artist rows of a seeds/rejections frame's pairs, unknown ids dropped."""
    if frame is None or frame.empty:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a = index.get_indexer(frame["artist_id"].astype(str).to_numpy())
    b = index.get_indexer(frame["similar_artist_id"].astype(str).to_numpy())
    ok = (a >= 0) & (b >= 0) & (a != b)
    return a[ok].astype(np.int64), b[ok].astype(np.int64)


def _undirected(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Sorted unique undirected keys ``min * n + max``."""
    return unique(np.minimum(a, b) * np.int64(n) + np.maximum(a, b))


def _in_sorted(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    i = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[i] == keys


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1)
    return x / np.where(norms > 0, norms, 1.0)[:, None]


def _vector_candidates(
    unit: np.ndarray, eligible: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each eligible artist's ``k`` nearest eligible artists by cosine.

    Returns
    -------
    src, dst : ndarray, shape (n_pairs,)
        Directed pairs (artist rows), ``src != dst``.
    """
    rows = np.flatnonzero(eligible)
    if len(rows) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    x = unit[rows]
    k = min(k, len(rows) - 1)
    src, dst = [], []
    for lo in range(0, len(rows), _SIM_CHUNK):
        sims = x[lo : lo + _SIM_CHUNK] @ x.T  # (chunk, n_eligible)
        sims[np.arange(len(sims)), np.arange(lo, lo + len(sims))] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        src.append(np.repeat(rows[lo : lo + len(sims)], k))
        dst.append(rows[top.ravel()])
    return np.concatenate(src), np.concatenate(dst)


def _row_dots(unit: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each pair of unit vectors, in chunks.

    Parameters
    ----------
    unit
        Unit (or zero) vectors, shape (n_artists, d), float32.
    a, b
        Artist rows of each pair, shape (n_pairs,).

    Returns
    -------
    numpy.ndarray
        Shape (n_pairs,), float64: ``unit[a] . unit[b]`` computed in float32,
        row by row as one ``einsum`` over all pairs would (same rounding).
    """
    out = np.empty(len(a), dtype=np.float32)
    for lo in range(0, len(a), _DOT_CHUNK):
        hi = lo + _DOT_CHUNK
        out[lo:hi] = np.einsum("ij,ij->i", unit[a[lo:hi]], unit[b[lo:hi]])
    return out.astype(np.float64)


def _top_per_source(src: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best-scored entries of each source, best first per source."""
    # One float sort on "source, then descending score" (scaled into [-1, 1]):
    # much faster than a two-key lexsort on millions of candidates.
    top = float(np.abs(score).max()) if len(score) else 1.0
    order = np.argsort(src * 4.0 - score / (top or 1.0), kind="stable")
    s = src[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    rank = np.arange(len(s)) - np.repeat(starts, np.diff(np.r_[starts, len(s)]))
    return order[rank < k]


def _per_source_max(src: np.ndarray, value: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float64)
    np.maximum.at(out, src, value)
    return out


def build_graph(inputs: GraphInputs, config: GraphConfig | None = None) -> GraphBuild:
    """Build the similar-artist graph from one training run's data.

    Parameters
    ----------
    inputs
        Artists, pool, vectors, training events, editorial tables.
    config
        Method parameters.

    Returns
    -------
    GraphBuild
    """
    config = config or GraphConfig()
    t0 = time.perf_counter()
    ids = np.asarray(inputs.artist_ids, dtype=object)
    n = len(ids)
    index = pd.Index(ids)
    pool = np.asarray(inputs.pool_artist, dtype=bool)
    anchored = config.mode == "anchored"

    # ---- co-listening, from the training events only -----------------------
    co = co_listening(
        inputs.event_user,
        inputs.event_artist,
        n,
        ts_ms=inputs.event_ts_ms,
        weight=inputs.event_weight,
        session_gap_ms=int(config.session_gap_minutes * 60_000),
        max_basket_artists=config.max_basket_artists,
        min_shared=config.min_shared_listeners,
    )
    listeners = co.listeners
    unit = _normalised(inputs.artist_factors)
    has_vector = np.linalg.norm(inputs.artist_factors, axis=1) > 0
    eligible = pool & has_vector & (listeners >= config.min_artist_listeners)

    # ---- editorial tables ---------------------------------------------------------
    rej_a, rej_b = _pair_rows(inputs.rejections, index)
    rejected = _undirected(rej_a, rej_b, n)
    if anchored:
        sa, sb = _pair_rows(inputs.seeds, index)
        seed_keys = _undirected(sa, sb, n)
    else:
        seed_keys = np.zeros(0, np.int64)
    n_seed_pairs = len(seed_keys)
    seed_keys = seed_keys[~_in_sorted(rejected, seed_keys)]
    n_seed_rejected = n_seed_pairs - len(seed_keys)
    ea, eb = seed_keys // n, seed_keys % n
    # Directed editorial relations, towards pool artists only.
    e_src = np.r_[ea, eb]
    e_dst = np.r_[eb, ea]
    towards_pool = pool[e_dst]
    e_src, e_dst = e_src[towards_pool], e_dst[towards_pool]
    reviewed_keys = np.zeros(0, np.int64)
    if inputs.reviewed:
        ra, rb = _pair_rows(
            pd.DataFrame(list(inputs.reviewed), columns=["artist_id", "similar_artist_id"]), index
        )
        reviewed_keys = _undirected(ra, rb, n)

    # ---- learned candidates ---------------------------------------------------
    t_step = time.perf_counter()
    v_src, v_dst = _vector_candidates(unit, eligible, config.vector_candidates)
    co_ok = eligible[co.a] & eligible[co.b]
    co_a, co_b, co_c = co.a[co_ok], co.b[co_ok], co.shared[co_ok]
    co_keys = co_a * np.int64(n) + co_b  # sorted: co_listening returns sorted keys
    ochiai = co_c / np.sqrt(listeners[co_a] * listeners[co_b]).clip(min=1)
    # Few shared accounts are weak evidence however small the artists: shrink.
    ochiai = ochiai * co_c / (co_c + config.colisten_shrinkage)
    o_ref = float(np.quantile(ochiai, 0.95)) if len(ochiai) else 1.0
    o_ref = max(o_ref, 1e-9)

    src = np.r_[v_src, co_a, co_b]
    dst = np.r_[v_dst, co_b, co_a]
    key = unique(src * np.int64(n) + dst)
    src, dst = key // n, key % n

    def colisten(ukey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shared accounts and shrunk Ochiai of undirected pair keys (0 where none)."""
        pos = np.minimum(np.searchsorted(co_keys, ukey), max(len(co_keys) - 1, 0))
        found = (co_keys[pos] == ukey) if len(co_keys) else np.zeros(len(ukey), bool)
        shared = np.where(found, co_c[pos] if len(co_c) else 0, 0).astype(np.int64)
        o = np.where(found, ochiai[pos] if len(ochiai) else 0.0, 0.0)
        return shared, o

    def learned_score(cos: np.ndarray, o: np.ndarray) -> np.ndarray:
        learned = (1 - config.colisten_weight) * np.maximum(cos, 0.0)
        return learned + config.colisten_weight * np.minimum(1.0, o / o_ref)

    def evidence(s: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cos = _row_dots(unit, s, d)
        shared, o = colisten(np.minimum(s, d) * np.int64(n) + np.maximum(s, d))
        return learned_score(cos, o), cos, shared

    # The vector test first: about half the candidates fail it (large platform),
    # and their co-listening lookup (a binary search each) is then never needed.
    # The same relations and values as scoring every candidate.
    cos = _row_dots(unit, src, dst)
    ok = cos >= config.min_vector_similarity
    src, dst, cos = src[ok], dst[ok], cos[ok]
    ukey = np.minimum(src, dst) * np.int64(n) + np.maximum(src, dst)
    shared, o = colisten(ukey)
    s = learned_score(cos, o)
    ok = (s >= config.min_learned_score) & ~_in_sorted(rejected, ukey)
    src, dst, s, cos, shared, ukey = src[ok], dst[ok], s[ok], cos[ok], shared[ok], ukey[ok]
    logger.info(
        "graph: %d learned candidates, %d pass the score thresholds, in %.2fs",
        len(key),
        len(src),
        time.perf_counter() - t_step,
    )

    seeded = np.zeros(n, dtype=bool)
    seeded[e_src[pool[e_src]]] = True
    walk = np.zeros(len(src))
    dist_all = np.full(n, -1, dtype=np.int64)
    e_walk = np.zeros(len(e_src))
    if anchored:
        # ---- anchoring -----------------------------------------------------------
        t_step = time.perf_counter()
        knn = _top_per_source(src, s, config.knn)
        learned_graph = sp.csr_matrix((s[knn], (src[knn], dst[knn])), shape=(n, n))
        in_pool_e = pool[e_src] & pool[e_dst]
        editorial_graph = sp.csr_matrix(
            (np.ones(int(in_pool_e.sum())), (e_src[in_pool_e], e_dst[in_pool_e])), shape=(n, n)
        )
        trans = walk_matrix(editorial_graph, learned_graph, config.editorial_walk_share)
        sources = unique(np.r_[src, e_src])
        scores = walk_scores(
            trans,
            sources,
            steps=config.walk_steps,
            decay=config.walk_decay,
            keep=config.walk_keep,
            first_step=config.walk_first_step,
        ).tocoo()
        wkeys = sources[scores.row] * np.int64(n) + scores.col
        order = np.argsort(wkeys)
        wkeys, wvals = wkeys[order], scores.data[order]

        def walk_of(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            k = a * np.int64(n) + b
            if len(wkeys) == 0:
                return np.zeros(len(k))
            pos = np.minimum(np.searchsorted(wkeys, k), len(wkeys) - 1)
            return np.where(wkeys[pos] == k, wvals[pos], 0.0)

        walk = walk_of(src, dst)
        e_walk = walk_of(e_src, e_dst)
        dist_all = seed_distance(editorial_graph + learned_graph, seeded, config.max_seed_hops)
        reachable = dist_all[dst] >= 0 if config.max_seed_hops >= 0 else np.ones(len(dst), bool)
        not_editorial = ~_in_sorted(seed_keys, ukey)
        ok = reachable & not_editorial
        src, dst, s, cos, shared, walk = src[ok], dst[ok], s[ok], cos[ok], shared[ok], walk[ok]
        s_max = _per_source_max(src, s, n)
        w_max = _per_source_max(src, walk, n)
        rank_score = (1 - config.anchor_weight) * s / np.where(s_max[src] > 0, s_max[src], 1.0)
        rank_score += config.anchor_weight * walk / np.where(w_max[src] > 0, w_max[src], 1.0)
        ok = rank_score >= config.min_anchored_score
        src, dst, s, cos, shared, walk = src[ok], dst[ok], s[ok], cos[ok], shared[ok], walk[ok]
        rank_score = rank_score[ok]
        logger.info(
            "graph: anchoring walk from %d sources, %d learned relations kept, in %.2fs",
            len(sources),
            len(src),
            time.perf_counter() - t_step,
        )
    else:
        rank_score = s.copy()

    top = _top_per_source(src, rank_score, config.max_learned)
    learned = pd.DataFrame(
        {
            "src": src[top],
            "dst": dst[top],
            "score": np.minimum(rank_score[top], 0.999),
            "provenance": LEARNED,
            "learned_score": s[top],
            "vector_similarity": cos[top],
            "shared_listeners": shared[top],
            "walk_score": walk[top],
            "tier": 1,
        }
    )
    e_s, e_cos, e_shared = evidence(e_src, e_dst)
    e_ukey = np.minimum(e_src, e_dst) * np.int64(n) + np.maximum(e_src, e_dst)
    editorial = pd.DataFrame(
        {
            "src": e_src,
            "dst": e_dst,
            "score": EDITORIAL_SCORE,
            "provenance": np.where(_in_sorted(reviewed_keys, e_ukey), REVIEWED, EDITORIAL),
            "learned_score": e_s,
            "vector_similarity": e_cos,
            "shared_listeners": e_shared,
            "walk_score": e_walk,
            "tier": 0,
        }
    )
    rel = pd.concat([editorial, learned], ignore_index=True)
    # Editorial first; within a tier by score, then learned evidence, then id (stable).
    rel["dst_id"] = ids[rel["dst"].to_numpy()] if len(rel) else pd.Series(dtype=object)
    rel = rel.sort_values(
        ["src", "tier", "score", "learned_score", "dst_id"],
        ascending=[True, True, False, False, True],
        kind="stable",
        ignore_index=True,
    )
    rel["rank"] = (rel.groupby("src").cumcount() + 1).astype(np.int32)
    relations = pd.DataFrame(
        {
            "artist_id": ids[rel["src"].to_numpy()].astype(str) if len(rel) else [],
            "similar_artist_id": rel["dst_id"].astype(str) if len(rel) else [],
            "rank": rel["rank"].to_numpy(np.int32),
            "score": rel["score"].to_numpy(np.float64),
            "provenance": rel["provenance"].astype(str).to_numpy(),
            "learned_score": rel["learned_score"].to_numpy(np.float64),
            "vector_similarity": rel["vector_similarity"].to_numpy(np.float64),
            "shared_listeners": rel["shared_listeners"].to_numpy(np.int64),
            "walk_score": rel["walk_score"].to_numpy(np.float64),
            "seed_distance": dist_all[rel["dst"].to_numpy(np.int64)] if len(rel) else [],
        },
        columns=list(RELATION_COLUMNS),
    )
    artists = pd.DataFrame(
        {
            "artist_id": ids.astype(str),
            "in_pool": pool,
            "listeners": listeners,
            "seeded": seeded,
            "seed_distance": dist_all,
        }
    )
    per_prov = relations["provenance"].value_counts()
    summary = {
        "mode": config.mode,
        "relations": {p: int(per_prov.get(p, 0)) for p in PROVENANCES},
        "artists_with_relations": int(relations["artist_id"].nunique()),
        "editorial_pairs": int(len(seed_keys)),
        "editorial_pairs_rejected": int(n_seed_rejected),
        "editorial_relations_out_of_pool": int((~towards_pool).sum()),
        "rejected_pairs": int(len(rejected)),
        "colistening": {
            "baskets": int(co.baskets),
            "pairs": int(len(co_a)),
            "o_ref": round(o_ref, 6),
        },
        "eligible_artists": int(eligible.sum()),
        "params": asdict(config),
        "time_s": round(time.perf_counter() - t0, 4),
    }
    logger.info(
        "graph (%s): %s relations over %d artists in %.2fs",
        config.mode,
        summary["relations"],
        summary["artists_with_relations"],
        summary["time_s"],
    )
    return GraphBuild(relations=relations, artists=artists, summary=summary)
