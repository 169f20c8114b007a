"""Publish one artifact from its parts: the single writer of the on-disk layout.

:func:`publish_artifact` is what the training pipeline's ``publish`` stage
calls, and what anything else that makes an artifact (the synthetic
artifacts of ``benchmarks/bench_serving.py``, tests) goes through, so that
every artifact has the same layout and is loaded by
:meth:`recsys.artifact.loaded.Artifact.load` like any other::

    catalogue/  tracks, artists, labels, artist_tags (Parquet)
    editorial/  seeds, rejections (Parquet)
    model/      users.parquet, user_factors.npy, item_factors.npy,
                artist_factors.npy, seen.npz
    index/      user_track and item_item FAISS indexes; the answers stored
                for known users and artists (when computed)
    pool/       exclusions.parquet
    quarantine/ one Parquet file per table with quarantined rows
    fraud/      accounts.parquet (when fraud detection ran)
    graph/      relations, artists (and reviews) of the similar-artist graph
    manifest.json

The parts are checked for consistency before anything is written: an
artifact the server would refuse (missing columns, shapes that disagree,
model items outside the pool, index sizes that differ from the factors) is
refused here with :class:`~recsys.errors.ArtifactError`, and nothing appears
at the destination. Writing goes through
:func:`~recsys.artifact.store.atomic_directory`, so a crash half-way leaves
nothing either.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.artifact.store import (
    ARTIST_ANSWERS_FILE,
    USER_ANSWERS_FILE,
    atomic_directory,
    write_manifest,
)
from recsys.contract.load import Quarantine
from recsys.errors import ArtifactError
from recsys.graph.build import GraphBuild
from recsys.graph.model import GRAPH_DIR, write_graph
from recsys.retrieval import StoredAnswers, VectorIndex, compute_answers
from recsys.vectors import unit_rows

logger = logging.getLogger(__name__)

#: Catalogue columns every artifact's ``catalogue/tracks.parquet`` carries.
TRACK_COLUMNS = (
    "track_id",
    "artist_id",
    "label_id",
    "title",
    "in_pool",
    "model_row",
    "listeners",
    "streams",
)
#: Columns of ``catalogue/artists.parquet`` the server reads.
ARTIST_COLUMNS = ("artist_id", "name", "label_id")


@dataclass
class ArtifactParts:
    """Everything one artifact holds, in memory.

    Rows: ``tracks`` is the whole catalogue (pool or not); model items are
    the pool tracks with a vector, numbered ``0 .. n_items - 1`` by
    ``tracks["model_row"]``; model users are numbered by ``user_ids``.

    Attributes
    ----------
    tracks
        Catalogue, one row per track, with at least :data:`TRACK_COLUMNS`
        (``model_row`` is -1 for tracks without a vector; ``listeners`` and
        ``streams`` are first-party counts that rank non-personalised lists).
    artists
        One row per artist, with at least :data:`ARTIST_COLUMNS`; rows as in
        ``artist_factors``.
    labels, artist_tags
        Contract tables, written as given.
    editorial_seeds, editorial_rejections
        Contract tables, written as given.
    user_ids
        Model users' ids, shape (n_users,).
    user_factors
        Shape (n_users, d).
    item_factors
        Shape (n_items, d).
    artist_factors
        Shape (n_artists, d).
    seen
        Sparse, shape (n_users, n_items): what each user streamed (non-zero
        entries; written as ones).
    user_index, item_index
        FAISS indexes over the model items (``ntotal == n_items``): inner
        product for users, cosine for items.
    pool_exclusions
        One row per catalogue track left out of the pool, with its reasons.
    graph
        The similar-artist graph (:func:`recsys.graph.build.build_graph`).
    graph_reviews
        The review log the graph saw (written when not empty).
    quarantine
        Rows that broke the contract (``None``: none).
    fraud_accounts
        Flagged accounts, for audit (``None``: fraud detection did not run).
    user_answers, artist_answers
        The indexes' answers stored for the most active users (user index,
        streamed items excluded) and for artists (item index, the artist's unit
        vector), from :func:`compute_stored_answers`; ``None``: not stored.
    """

    tracks: pd.DataFrame
    artists: pd.DataFrame
    labels: pd.DataFrame
    artist_tags: pd.DataFrame
    editorial_seeds: pd.DataFrame
    editorial_rejections: pd.DataFrame
    user_ids: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    artist_factors: np.ndarray
    seen: sp.spmatrix | sp.sparray
    user_index: VectorIndex
    item_index: VectorIndex
    pool_exclusions: pd.DataFrame
    graph: GraphBuild
    graph_reviews: pd.DataFrame | None = None
    quarantine: Quarantine | None = None
    fraud_accounts: pd.DataFrame | None = None
    user_answers: StoredAnswers | None = None
    artist_answers: StoredAnswers | None = None


def compute_stored_answers(
    user_index: VectorIndex,
    item_index: VectorIndex,
    user_factors: np.ndarray,
    seen: sp.spmatrix | sp.sparray,
    artist_factors: np.ndarray,
    *,
    users_depth: int,
    artists_depth: int,
    max_users: int | None = None,
    show_progress: bool = False,
    n_threads: Callable[[], int | None] | None = None,
) -> tuple[StoredAnswers | None, StoredAnswers | None]:
    """The answers to store for known users and artists (see :mod:`recsys.retrieval.answers`).

    The queries are the server's own: a known user's vector with their
    streamed items excluded (:meth:`recsys.surfaces.recommend.Recommender.for_users`),
    and an artist's unit vector for its radio without a listener
    (:func:`recsys.surfaces.radio.query_vector`).

    Parameters
    ----------
    user_factors : shape (n_users, d)
    seen : shape (n_users, n_items)
    artist_factors : shape (n_artists, d)
    users_depth, artists_depth
        Ids stored per user and per artist; 0 stores none (``None`` returned).
    max_users
        Most users with a stored answer: those with most distinct streamed
        tracks (ties: lower row first); ``None``: all. Artists with a vector all
        get one.
    n_threads
        Asked before each batch of searches: faiss's threads for it (see
        :func:`recsys.retrieval.answers.compute_answers`).

    Returns
    -------
    user_answers, artist_answers : StoredAnswers or None
        Over ``n_users`` and ``n_artists`` queries, ``users_depth`` and
        ``artists_depth`` ids per stored one.
    """
    user_answers = artist_answers = None
    if users_depth > 0 and max_users != 0:
        csr = sp.csr_matrix(seen)
        n_users = csr.shape[0]
        heard = np.diff(csr.indptr)
        rows = np.arange(n_users)
        if max_users is not None and max_users < n_users:
            # The most active users: in the requests, as in the listening.
            rows = np.sort(np.lexsort((rows, -heard))[:max_users])
        # Each stored user's streamed items, as the server excludes them (None: not asked).
        exclude: list[np.ndarray | None] = [None] * n_users
        for r in rows.tolist():
            exclude[r] = csr.indices[csr.indptr[r] : csr.indptr[r + 1]].astype(np.int64)
        user_answers = compute_answers(
            user_index,
            np.asarray(user_factors, dtype=np.float32),
            users_depth,
            exclude=exclude,
            rows=rows,
            desc="user answers",
            show_progress=show_progress,
            n_threads=n_threads,
        )
    if artists_depth > 0:
        factors = np.asarray(artist_factors)
        artist_answers = compute_answers(
            item_index,
            unit_rows(factors).astype(np.float32),
            artists_depth,
            rows=np.flatnonzero(np.linalg.norm(factors, axis=1) > 0),
            desc="artist answers",
            show_progress=show_progress,
            n_threads=n_threads,
        )
    return user_answers, artist_answers


def _answers_summary(answers: StoredAnswers | None) -> dict[str, int]:
    if answers is None:
        return {"stored": 0, "depth": 0}
    return {"stored": answers.n_stored, "depth": answers.depth}


def retrieval_summary(user_index: VectorIndex, item_index: VectorIndex) -> dict[str, Any]:
    """The manifest's ``retrieval`` section for the two indexes."""
    return {
        "user_track": {"kind": user_index.kind, "metric": "ip", "size": user_index.ntotal},
        "item_item": {"kind": item_index.kind, "metric": "cosine", "size": item_index.ntotal},
    }


def check_parts(parts: ArtifactParts) -> list[str]:
    """What makes ``parts`` an artifact the server would refuse (empty: nothing).

    Parameters
    ----------
    parts
        The parts to check.

    Returns
    -------
    list of str
        One message per problem found.
    """
    problems: list[str] = []
    missing = [c for c in TRACK_COLUMNS if c not in parts.tracks.columns]
    if missing:
        problems.append(f"tracks lack columns {missing}")
    missing = [c for c in ARTIST_COLUMNS if c not in parts.artists.columns]
    if missing:
        problems.append(f"artists lack columns {missing}")
    if problems:
        return problems  # the checks below read those columns

    n_users, n_items = len(parts.user_ids), len(parts.item_factors)
    dims = {
        np.ndim(parts.user_factors),
        np.ndim(parts.item_factors),
        np.ndim(parts.artist_factors),
    }
    if dims != {2}:
        return [*problems, "factors must be 2-D arrays"]
    d = parts.item_factors.shape[1]
    if parts.user_factors.shape != (n_users, d):
        problems.append(
            f"user factors have shape {parts.user_factors.shape}, expected ({n_users}, {d})"
        )
    if parts.artist_factors.shape != (len(parts.artists), d):
        problems.append(
            f"artist factors have shape {parts.artist_factors.shape}, "
            f"expected ({len(parts.artists)}, {d})"
        )
    if tuple(parts.seen.shape) != (n_users, n_items):
        problems.append(f"seen has shape {parts.seen.shape}, expected ({n_users}, {n_items})")
    for name, index, in_dim in (
        ("user_track", parts.user_index, d),
        ("item_item", parts.item_index, d),
    ):
        if index.ntotal != n_items or index.dim != in_dim:
            problems.append(
                f"index {name} holds {index.ntotal} x {index.dim} vectors, "
                f"expected {n_items} x {in_dim}"
            )

    model_row = parts.tracks["model_row"].to_numpy()
    rows = model_row[model_row >= 0]
    if len(rows) != n_items or not np.array_equal(np.sort(rows), np.arange(n_items)):
        problems.append("model_row must number the model items 0 .. n_items - 1, once each")
    elif not parts.tracks["in_pool"].to_numpy(dtype=bool)[model_row >= 0].all():
        problems.append("a model item outside the trusted pool")
    for name, answers, n_rows in (
        ("user", parts.user_answers, n_users),
        ("artist", parts.artist_answers, len(parts.artists)),
    ):
        if answers is not None and answers.n_queries != n_rows:
            problems.append(f"{name} answers are for {answers.n_queries} rows, expected {n_rows}")
        elif answers is not None and answers.ids.size and int(answers.ids.max()) >= n_items:
            problems.append(f"{name} answers name items beyond the model's {n_items}")
    if not parts.tracks["track_id"].is_unique:
        problems.append("duplicate track ids")
    if not parts.artists["artist_id"].is_unique:
        problems.append("duplicate artist ids")
    if not parts.tracks["artist_id"].isin(parts.artists["artist_id"]).all():
        problems.append("tracks by artists missing from the artist table")
    return problems


def publish_artifact(
    dest: str | Path,
    parts: ArtifactParts,
    manifest: Mapping[str, Any],
    *,
    finalize: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Write ``parts`` as one artifact at ``dest``, atomically, with its manifest.

    Parameters
    ----------
    dest
        Artifact directory; an existing artifact there is replaced atomically
        (see :func:`~recsys.artifact.store.atomic_directory`).
    parts
        What the artifact holds; checked first (:func:`check_parts`).
    manifest
        Manifest content, at least ``version`` and ``created_at`` (ISO 8601).
        ``retrieval`` and ``graph`` sections are filled in from ``parts``
        when absent; ``format`` and ``files`` (a SHA-256 per file) are added.
    finalize
        Called with the manifest once every file is written, just before the
        checksum pass (e.g. to record timings that cover the writing); may
        change it in place.

    Returns
    -------
    dict
        The manifest as written.

    Raises
    ------
    ArtifactError
        Incomplete or inconsistent parts, or a manifest without a version
        or creation time: nothing is written.
    """
    dest = Path(dest)
    content = dict(manifest)
    problems = check_parts(parts)
    if not content.get("version") or not content.get("created_at"):
        problems.append("the manifest needs a version and a created_at")
    if problems:
        raise ArtifactError(f"refusing to publish {dest}: {'; '.join(problems)}")
    content.setdefault("retrieval", retrieval_summary(parts.user_index, parts.item_index))
    content["retrieval"] = {
        **content["retrieval"],
        "stored_answers": {
            "users": _answers_summary(parts.user_answers),
            "artists": _answers_summary(parts.artist_answers),
        },
    }
    content.setdefault("graph", parts.graph.summary)

    t0 = time.perf_counter()
    with atomic_directory(dest) as tmp:
        for sub in ("catalogue", "model", "index", "pool", "editorial"):
            (tmp / sub).mkdir()
        parts.tracks.to_parquet(tmp / "catalogue/tracks.parquet", index=False)
        parts.artists.to_parquet(tmp / "catalogue/artists.parquet", index=False)
        parts.labels.to_parquet(tmp / "catalogue/labels.parquet", index=False)
        parts.artist_tags.to_parquet(tmp / "catalogue/artist_tags.parquet", index=False)
        parts.editorial_seeds.to_parquet(tmp / "editorial/seeds.parquet", index=False)
        parts.editorial_rejections.to_parquet(tmp / "editorial/rejections.parquet", index=False)
        users = pd.DataFrame({"user_id": np.asarray(parts.user_ids)})
        users.to_parquet(tmp / "model/users.parquet", index=False)
        np.save(tmp / "model/user_factors.npy", parts.user_factors)
        np.save(tmp / "model/item_factors.npy", parts.item_factors)
        np.save(tmp / "model/artist_factors.npy", parts.artist_factors)
        seen = sp.csr_matrix(parts.seen, copy=True)
        seen.data = np.ones_like(seen.data, dtype=np.float32)
        sp.save_npz(tmp / "model/seen.npz", seen.astype(np.float32), compressed=False)
        parts.user_index.save(tmp / "index", "user_track")
        parts.item_index.save(tmp / "index", "item_item")
        if parts.user_answers is not None:
            parts.user_answers.save(tmp / "index" / USER_ANSWERS_FILE)
        if parts.artist_answers is not None:
            parts.artist_answers.save(tmp / "index" / ARTIST_ANSWERS_FILE)
        parts.pool_exclusions.to_parquet(tmp / "pool/exclusions.parquet", index=False)
        (parts.quarantine or Quarantine()).write(tmp / "quarantine")
        if parts.fraud_accounts is not None:
            (tmp / "fraud").mkdir()
            parts.fraud_accounts.to_parquet(tmp / "fraud/accounts.parquet", index=False)
        graph_dir = tmp / GRAPH_DIR
        write_graph(graph_dir, parts.graph.relations, parts.graph.artists)
        if parts.graph_reviews is not None and len(parts.graph_reviews):
            parts.graph_reviews.to_parquet(graph_dir / "reviews.parquet", index=False)
        if finalize is not None:
            finalize(content)
        written = write_manifest(tmp, content)
    logger.info(
        "published artifact %s at %s (%d files) in %.2fs",
        written["version"],
        dest,
        len(written["files"]),
        time.perf_counter() - t0,
    )
    return written
