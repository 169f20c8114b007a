"""Personalised track recommendations, each with the reason it is there.

Candidates come from the FAISS index over the trusted pool; what a user has
already streamed, what the caller excludes and what was taken down since
training are excluded inside the search, so a request still returns ``k``
items whenever the pool holds ``k`` eligible ones. A known user's first ``k``
candidates usually come from the answer the artifact stores for them
(:mod:`recsys.retrieval.answers`): the ids that search returns, without the
graph walk.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from recsys.artifact.loaded import Artifact
from recsys.lookup import isin
from recsys.models import confidence

logger = logging.getLogger(__name__)

#: How many of a user's most-listened artists are considered as the reason for a track.
REASON_ARTISTS = 30


# Reason and Item are named tuples, not frozen dataclasses: a request builds
# 20-50 items and up to 100 reasons, and a frozen dataclass took 2.8 us to build
# (its __init__ goes through object.__setattr__) against 0.6 us for a named
# tuple: 140 against 30 us for a 50-track radio's items (measured). Both are
# as immutable.


class Reason(NamedTuple):
    """Why an item is in an answer.

    ``kind`` is one of ``listened_artist`` (a collaborative-filtering match to
    an artist the user listens to), ``popular`` (non-personalised),
    ``editorial_seed``, ``similar_artist``, ``seed_artist``, ``seed_track``,
    ``new_release``, ``familiar``.
    """

    kind: str
    text: str
    artist_id: str | None = None
    artist_name: str | None = None


class Item(NamedTuple):
    """One track of an answer, with its score and the reason it is there."""

    track_id: str
    artist_id: str
    title: str | None
    score: float
    reason: Reason


@dataclass(frozen=True)
class Recommendations:
    user_id: str
    items: list[Item]
    personalized: bool
    model_version: str


def make_items(
    artifact: Artifact,
    track_rows: np.ndarray | Sequence[int],
    scores: np.ndarray | Sequence[float],
    reasons: Sequence[Reason],
) -> list[Item]:
    """Domain items of catalogue tracks, with their scores and reasons.

    Ids and titles are gathered with one ``take`` each from the catalogue's
    Arrow strings: per item, scalar indexing cost more than building the item
    (a 50-track radio spent about 0.3 ms on it). A missing title is ``None``.

    Parameters
    ----------
    artifact
        The served artifact.
    track_rows, scores, reasons
        Shape (m,) each.
    """
    rows = np.asarray(track_rows, dtype=np.int64)
    track_ids = artifact.track_ids_of(rows)  # Python str from Arrow
    artist_ids = [str(a) for a in artifact.artist_ids[artifact.track_artist[rows]].tolist()]
    titles = artifact.track_titles_of(rows)
    scores = np.asarray(scores, dtype=np.float64).tolist()
    if not len(track_ids) == len(scores) == len(reasons):
        raise ValueError(
            f"{len(track_ids)} tracks, {len(scores)} scores and {len(reasons)} reasons"
        )
    return list(map(Item, track_ids, artist_ids, titles, scores, reasons))


def popular_order(listeners: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Eligible catalogue rows, most listeners first, ties by row.

    Parameters
    ----------
    listeners, eligible
        Per catalogue track, shape (n_tracks,).

    Returns
    -------
    ndarray, shape (n_eligible,)
        int32 below 2**31 tracks (half the memory of int64).

    Notes
    -----
    One stable sort of the increasing eligible rows by listeners: fewer
    1M-long temporaries than ``lexsort`` while a reload builds an engine
    beside the serving one.
    """
    rows = np.flatnonzero(eligible)
    row_type = np.int32 if len(eligible) < 2**31 else np.int64
    return rows[np.argsort(-listeners[rows], kind="stable")].astype(row_type)


class Recommender:
    """Track recommendations over a loaded artifact.

    Parameters
    ----------
    artifact
        The served artifact.
    blocked_items
        Boolean mask over model items, shape (n_model_items,): taken down
        since training. ``None``: nothing blocked.
    blocked_tracks
        Boolean mask over catalogue tracks, shape (n_tracks,), for the
        non-personalised list.
    erased_users
        Users erased since training: answered as unknown users.
    popular_rows
        The eligible catalogue rows, most listeners first, ties by row, when the
        caller has them already (:attr:`SurfaceContext.popular_rows` of the same
        artifact and blocked tracks): one copy per engine instead of two.
    """

    def __init__(
        self,
        artifact: Artifact,
        *,
        blocked_items: np.ndarray | None = None,
        blocked_tracks: np.ndarray | None = None,
        erased_users: frozenset[str] = frozenset(),
        popular_rows: np.ndarray | None = None,
    ) -> None:
        self.artifact = artifact
        self.erased_users = erased_users
        a = artifact
        self._blocked_ids = (
            np.flatnonzero(blocked_items).astype(np.int64) if blocked_items is not None else None
        )
        has_blocked = self._blocked_ids is not None and self._blocked_ids.size > 0
        self._blocked_mask = np.asarray(blocked_items, dtype=bool) if has_blocked else None
        # Non-personalised ranking: pool tracks by distinct first-party listeners.
        listeners = a.tracks["listeners"].to_numpy()
        if popular_rows is None:
            eligible = a.tracks["in_pool"].to_numpy(dtype=bool)
            if blocked_tracks is not None:
                eligible = eligible & ~blocked_tracks
            popular_rows = popular_order(listeners, eligible)
        self._popular = popular_rows
        self._listeners = listeners  # the catalogue's own array, for the popular list
        # Object arrays built once per artifact, shared by every view of it.
        self._artist_ids = a.artist_ids
        self._artist_names = a.artist_names
        self._max_listeners = max(int(listeners.max()) if len(listeners) else 1, 1)

    # ------------------------------------------------------------------ helpers

    def artist_name(self, artist_row: int) -> str:
        name = self._artist_names[artist_row]
        return str(name) if name is not None else str(self._artist_ids[artist_row])

    def popular(self, k: int, *, exclude_tracks: np.ndarray | None = None) -> list[Item]:
        """The most-listened pool tracks, non-personalised.

        Parameters
        ----------
        exclude_tracks
            Catalogue rows to leave out.
        """
        rows = self._popular
        if exclude_tracks is not None and len(exclude_tracks):
            rows = rows[~isin(rows, exclude_tracks)]
        rows = rows[:k]
        reason = Reason("popular", "Popular with listeners on the platform")
        return make_items(
            self.artifact, rows, self._listeners[rows] / self._max_listeners, [reason] * len(rows)
        )

    def _exclusions(self, user_row: int, exclude_tracks: np.ndarray | None) -> np.ndarray:
        seen = self.artifact.seen
        ids = seen.indices[seen.indptr[user_row] : seen.indptr[user_row + 1]].astype(np.int64)
        if exclude_tracks is not None and len(exclude_tracks):
            model_rows = self.artifact.tracks["model_row"].to_numpy()[exclude_tracks]
            ids = np.union1d(ids, model_rows[model_rows >= 0].astype(np.int64))
        return ids

    def _stored_answers(
        self, user_rows: np.ndarray, k: int
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Search results for users whose answer the artifact stores (no graph walk).

        The stored answer excludes what each user streamed, as the live search
        does; a user is left to the live search when fewer than ``k`` ids are
        stored or one of them was taken down since (it is then excluded inside
        faiss, before retrieval). See :mod:`recsys.retrieval.answers`.

        Returns
        -------
        dict
            Position in ``user_rows`` -> ``(scores, ids)``, shape (k,) each,
            best first.
        """
        a = self.artifact
        stored = a.user_answers
        found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if stored is None:
            return found
        for j, r in enumerate(user_rows.tolist()):
            got = stored.first(r, k, self._blocked_mask)
            if got is not None:
                found[j] = a.user_index.rank(a.user_factors[r], got)
        return found

    def _reasons(self, user_row: int, items: np.ndarray) -> list[Reason]:
        """For each recommended model item, the listened artist closest to it."""
        a = self.artifact
        seen_items = a.seen.indices[a.seen.indptr[user_row] : a.seen.indptr[user_row + 1]]
        return self._reasons_from(seen_items, items)

    def _reasons_from(self, seen_items: np.ndarray, items: np.ndarray) -> list[Reason]:
        a = self.artifact
        listened, counts = np.unique(a.item_artist[seen_items], return_counts=True)
        top = listened[np.argsort(-counts, kind="stable")[:REASON_ARTISTS]]
        if len(top) == 0:
            return [Reason("popular", "Popular with listeners on the platform")] * len(items)
        sims = a.artist_factors[top] @ a.item_factors[items].T  # (n_top, n_items)
        best = top[np.argmax(sims, axis=0)]
        own = a.item_artist[items]
        # The track's own artist when the user listens to it, else the closest listened one.
        chosen = np.where(isin(own, top), own, best).tolist()
        # One reason per distinct artist (reasons are immutable), built once per answer.
        made: dict[int, Reason] = {}
        for c in set(chosen):
            name = self.artist_name(c)
            made[c] = Reason(
                "listened_artist",
                f"Because you listen to {name}",
                artist_id=str(self._artist_ids[c]),
                artist_name=name,
            )
        return [made[c] for c in chosen]

    def fold_in(self, track_ids: Sequence[str], plays: Sequence[float]) -> np.ndarray | None:
        """A user vector for a history the model never saw (a new or held-out user).

        Solves the ALS user step against the fixed item factors, with the
        artifact's own confidence weighting and regularisation:
        ``(Y^T Y + Y_u^T (C_u - I) Y_u + lambda I) x = Y_u^T C_u 1``.

        Returns
        -------
        ndarray or None
            Shape (d,); ``None`` when no track of the history has a vector.
        """
        a = self.artifact
        rows = a.track_rows(list(track_ids))
        model_rows = np.where(rows >= 0, a.tracks["model_row"].to_numpy()[np.maximum(rows, 0)], -1)
        ok = model_rows >= 0
        if not ok.any():
            return None
        params = a.manifest["training"]["params"]
        counts = sp.csr_matrix(np.asarray(plays, dtype=np.float32)[ok][None, :])
        c = confidence(counts, weighting=params["weighting"], alpha=params["alpha"]).data
        y = a.item_factors[model_rows[ok]].astype(np.float64)
        yty = a.gram  # Y^T Y over all items, computed once per artifact
        lhs = yty + (y.T * (c - 1.0)) @ y + params["regularization"] * np.eye(y.shape[1])
        rhs = (y * c[:, None]).sum(axis=0)
        return np.linalg.solve(lhs, rhs).astype(np.float32)

    def for_history(
        self, track_ids: Sequence[str], plays: Sequence[float], k: int
    ) -> Recommendations:
        """Recommendations for a listening history the model never saw (folded in)."""
        if k <= 0:
            raise ValueError("k must be positive")
        a = self.artifact
        vector = self.fold_in(track_ids, plays)
        rows = a.track_rows(list(track_ids))
        heard = rows[rows >= 0]
        if vector is None:
            return Recommendations("", self.popular(k, exclude_tracks=heard), False, a.version)
        model_rows = a.tracks["model_row"].to_numpy()[heard]
        exclude = np.unique(model_rows[model_rows >= 0]).astype(np.int64)
        scores, ids = a.user_index.search(
            vector[None, :], k, exclude=[exclude], blocked=self._blocked_ids
        )
        valid = ids[0] >= 0
        items_ = ids[0][valid]
        reasons = self._reasons_from(exclude, items_)
        out = make_items(self.artifact, a.item_track[items_], scores[0][valid], reasons)
        if len(out) < k:
            taken = np.concatenate([heard, a.item_track[items_]])
            out += self.popular(k - len(out), exclude_tracks=taken)
        return Recommendations("", out, True, a.version)

    # ------------------------------------------------------------------ public

    def for_user(
        self, user_id: str, k: int, *, exclude_track_ids: Sequence[str] = ()
    ) -> Recommendations:
        """Top-``k`` pool tracks for one user (see :meth:`for_users`)."""
        return self.for_users([user_id], k, exclude_track_ids=exclude_track_ids)[0]

    def for_users(
        self, user_ids: Sequence[str], k: int, *, exclude_track_ids: Sequence[str] = ()
    ) -> list[Recommendations]:
        """Top-``k`` pool tracks for each user, seen tracks excluded.

        Users the model does not know (unknown, without consent, or without
        first-party data) get the non-personalised list, marked as such.

        Parameters
        ----------
        user_ids
            Shape (n,).
        k
            Items per user (> 0).
        exclude_track_ids
            Tracks to leave out for every user in this call.

        Returns
        -------
        list of Recommendations
            One per user, in order.
        """
        if k <= 0:
            raise ValueError("k must be positive")
        a = self.artifact
        excl_rows = a.track_rows(list(exclude_track_ids)) if exclude_track_ids else None
        if excl_rows is not None:
            excl_rows = excl_rows[excl_rows >= 0]
        rows = [None if u in self.erased_users else a.user_row(u) for u in user_ids]
        known = [i for i, r in enumerate(rows) if r is not None]
        results: list[Recommendations | None] = [None] * len(user_ids)

        if known:
            user_rows = np.array([rows[i] for i in known], dtype=np.int64)
            found = self._stored_answers(user_rows, k) if excl_rows is None else {}
            live = [j for j in range(len(known)) if j not in found]
            excludes = {j: self._exclusions(int(user_rows[j]), excl_rows) for j in live}
            if live:
                scores, ids = a.user_index.search(
                    a.user_factors[user_rows[live]],
                    k,
                    exclude=[excludes[j] for j in live],
                    blocked=self._blocked_ids,
                )
                found.update((j, (scores[t], ids[t])) for t, j in enumerate(live))
            for j, i in enumerate(known):
                scores_j, ids_j = found[j]
                valid = ids_j >= 0
                items_j = ids_j[valid]
                reasons = self._reasons(int(user_rows[j]), items_j)
                out = make_items(self.artifact, a.item_track[items_j], scores_j[valid], reasons)
                if len(out) < k:
                    # The model's items are exhausted: fill from the rest of the pool.
                    excluded = excludes.get(j)
                    if excluded is None:
                        excluded = self._exclusions(int(user_rows[j]), excl_rows)
                    taken = np.concatenate(
                        [a.item_track[excluded], a.item_track[items_j]]
                        + ([excl_rows] if excl_rows is not None else [])
                    )
                    out += self.popular(k - len(out), exclude_tracks=taken)
                results[i] = Recommendations(user_ids[i], out, True, a.version)

        popular = None
        for i, r in enumerate(results):
            if r is None:
                if popular is None:
                    popular = self.popular(k, exclude_tracks=excl_rows)
                results[i] = Recommendations(user_ids[i], popular, False, a.version)
        return results  # type: ignore[return-value]
