"""What every listening surface reads from the served artifact, prepared once per engine."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd

from recsys.artifact.loaded import Artifact
from recsys.errors import UnknownArtist, UnknownTrack
from recsys.graph.build import PROVENANCES
from recsys.lookup import index_rows, isin
from recsys.surfaces.recommend import Item, Reason, make_items, popular_order
from recsys.surfaces.settings import SurfaceSettings
from recsys.vectors import unit_rows

logger = logging.getLogger(__name__)

POPULAR = Reason("popular", "Popular with listeners on the platform")


def rank_in_runs(sizes: np.ndarray) -> np.ndarray:
    """0-based position of each element within its run, for consecutive runs of ``sizes``.

    Returns
    -------
    ndarray
        Shape (sizes.sum(),), int64.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    return np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)


class SurfaceContext:
    """Arrays and helpers shared by the listening surfaces of one engine.

    Parameters
    ----------
    artifact
        The served artifact.
    settings
        Surface settings.
    blocked_tracks
        Boolean mask over catalogue tracks, shape (n_tracks,): taken down
        since training (never returned). ``None``: nothing blocked.
    erased_users
        Users erased since training: treated as unknown (never personalised).

    Attributes
    ----------
    eligible
        Boolean, shape (n_tracks,): pool tracks not blocked, the only tracks
        a surface may return.
    artist_available
        Boolean, shape (n_artists,): the artist has at least one eligible track.
    item_unit
        Row-normalised item vectors, shape (n_model_items, d).
    artist_unit
        Row-normalised artist vectors, shape (n_artists, d).
    seeded_artist
        Boolean, shape (n_artists,): the artist is in an editorial seed.
    """

    def __init__(
        self,
        artifact: Artifact,
        settings: SurfaceSettings | None = None,
        *,
        blocked_tracks: np.ndarray | None = None,
        erased_users: frozenset[str] = frozenset(),
    ) -> None:
        a = artifact
        self.artifact = a
        self.erased_users = erased_users
        self.settings = settings or SurfaceSettings()
        self.graph = a.graph
        n_tracks, n_artists = len(a.tracks), len(a.artists)
        blocked = blocked_tracks if blocked_tracks is not None else np.zeros(n_tracks, bool)
        self.eligible = a.tracks["in_pool"].to_numpy(dtype=bool) & ~blocked
        self.track_artist = a.track_artist
        # The catalogue's own arrays (no copy per engine view: 8 MB each at 1M tracks,
        # held twice while a reload builds a new engine beside the serving one).
        self.model_row = a.tracks["model_row"].to_numpy()
        self.listeners = a.tracks["listeners"].to_numpy()
        # Shared by every view of this artifact (takedowns rebuild the view, not these).
        self.item_unit = a.item_unit
        self.artist_unit = a.artist_unit
        self.artist_has_vector = np.linalg.norm(a.artist_factors, axis=1) > 0
        # Model items that may not be returned (blocked since training), for the searches.
        item_ok = self.eligible[a.item_track]
        self.blocked_items = np.flatnonzero(~item_ok).astype(np.int64)
        self._item_blocked = ~item_ok if self.blocked_items.size else None
        # Eligible tracks, most listened first, ties by row (the recommender's list too).
        popular = popular_order(self.listeners, self.eligible)
        self.popular_rows = popular
        # Eligible tracks per artist in that order (CSR over artist rows).
        by_artist = self.track_artist[popular]
        self._artist_track_rows = popular[np.argsort(by_artist, kind="stable")]
        del by_artist
        self._artist_track_ptr = np.zeros(n_artists + 1, dtype=np.int64)
        np.cumsum(
            np.bincount(self.track_artist[popular], minlength=n_artists),
            out=self._artist_track_ptr[1:],
        )
        self.artist_available = np.diff(self._artist_track_ptr) > 0
        self._max_listeners = max(float(self.listeners.max()) if n_tracks else 1.0, 1.0)
        # Built once per artifact, shared by every view of it; what answers are made
        # from (make_items) is built now, not by a request.
        a.track_titles  # noqa: B018
        self._artist_ids = a.artist_ids
        self._artist_names = a.artist_names
        self.release_day = a.release_day  # once per artifact, not per engine view
        self._tags = _tag_lookup(a.artist_tags, pd.Index(self._artist_ids))
        self.seeded_artist = np.zeros(n_artists, dtype=bool)
        seeds = a.editorial_seeds
        if len(seeds):
            for col in ("artist_id", "similar_artist_id"):
                r = a.artist_rows(seeds[col].astype(str).to_numpy())
                self.seeded_artist[r[r >= 0]] = True

    # ----------------------------------------------------------------- ids, names

    def artist_row(self, artist_id: str) -> int:
        """Artist row of ``artist_id``; raises :class:`UnknownArtist`."""
        row = self.artifact.artist_row(artist_id)
        if row < 0:
            raise UnknownArtist(artist_id)
        return row

    def track_row(self, track_id: str) -> int:
        """Catalogue row of ``track_id``; raises :class:`UnknownTrack`."""
        row = self.artifact.track_row(track_id)
        if row < 0:
            raise UnknownTrack(track_id)
        return row

    def artist_id(self, row: int) -> str:
        return str(self._artist_ids[row])

    def artist_name(self, row: int) -> str:
        name = self._artist_names[row]
        return str(name) if isinstance(name, str) and name else str(self._artist_ids[row])

    def item(self, track_row: int, score: float, reason: Reason) -> Item:
        """The domain item for one catalogue track."""
        return make_items(self.artifact, [track_row], [score], [reason])[0]

    def items(self, picked: list[tuple[int, float, Reason]]) -> list[Item]:
        """The domain items of ``(track_row, score, reason)`` triples (see :func:`make_items`)."""
        return make_items(
            self.artifact, [p[0] for p in picked], [p[1] for p in picked], [p[2] for p in picked]
        )

    # ----------------------------------------------------------------- tracks

    def artist_tracks(self, artist_row: int) -> np.ndarray:
        """Eligible tracks of an artist, most listened first, shape (m,)."""
        lo, hi = self._artist_track_ptr[artist_row], self._artist_track_ptr[artist_row + 1]
        return self._artist_track_rows[lo:hi]

    def fit(self, track_rows: np.ndarray, query: np.ndarray | None) -> np.ndarray:
        """How well tracks fit a unit query vector, in [0, 1], shape (m,).

        The cosine of the track's vector with the query mapped to [0, 1]
        (tracks without a vector get 0.5); without a query, popularity.
        """
        track_rows = np.asarray(track_rows, dtype=np.int64)
        if query is None or not np.any(query):
            return self.listeners[track_rows] / self._max_listeners
        mr = self.model_row[track_rows]
        out = np.full(len(track_rows), 0.5)
        has = mr >= 0
        # Gather (np.take), widen float16 vectors, then one BLAS product: a float16
        # matrix times a float32 query takes numpy's mixed-type path, measured 1.6
        # times as slow for the ~350 rows of a radio (232 against 142 us).
        vecs = np.take(self.item_unit, mr[has], axis=0)
        out[has] = (1.0 + vecs.astype(np.result_type(vecs, query), copy=False) @ query) / 2.0
        return out

    def best_tracks(
        self, artist_row: int, query: np.ndarray | None, held_back: np.ndarray | None, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """An artist's ``k`` best-fitting eligible tracks not held back, and their fit.

        The candidates are the artist's ``settings.tracks_per_artist`` most
        listened eligible tracks not held back.
        """
        rows = self.artist_tracks(artist_row)
        if held_back is not None and len(held_back) and len(rows):
            rows = rows[~isin(rows, held_back)]
        # Only the artist's most listened tracks compete (settings.tracks_per_artist).
        rows = rows[: self.settings.tracks_per_artist]
        if len(rows) == 0:
            return rows, np.zeros(0)
        fit = self.fit(rows, query)
        order = np.argsort(-fit, kind="stable")[:k]
        return rows[order], fit[order]

    def best_tracks_many(
        self,
        artist_rows: np.ndarray,
        query: np.ndarray | None,
        held_back: np.ndarray | None,
        k: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`best_tracks` of several artists at once (one gather, one product).

        Each artist's candidates are its ``settings.tracks_per_artist`` most
        listened eligible tracks not held back.

        Parameters
        ----------
        artist_rows
            Artist rows, shape (m,).

        Returns
        -------
        rows, fit : ndarray, shape (n,)
            Each artist's ``k`` best-fitting eligible tracks not held back, best
            first, artists in the order given.
        ptr : ndarray, shape (m + 1,)
            Artist ``j``'s tracks are ``rows[ptr[j]:ptr[j + 1]]``.
        """
        artist_rows = np.asarray(artist_rows, dtype=np.int64)
        lo = self._artist_track_ptr[artist_rows]
        counts = self._artist_track_ptr[artist_rows + 1] - lo
        group = np.repeat(np.arange(len(artist_rows)), counts)
        # Position of every gathered track in the per-artist CSR, artists in order.
        rows = self._artist_track_rows[np.repeat(lo, counts) + rank_in_runs(counts)]
        if held_back is not None and len(held_back) and len(rows):
            keep = ~isin(rows, held_back)
            rows, group = rows[keep], group[keep]
        # Only each artist's most listened tracks compete (settings.tracks_per_artist):
        # rows are grouped by artist, most listened first, so that is a rank cut,
        # made before the costly part (gathering and scoring the tracks' vectors).
        per_artist = np.bincount(group, minlength=len(artist_rows))
        top = rank_in_runs(per_artist) < self.settings.tracks_per_artist
        rows, group = rows[top], group[top]
        fit = self.fit(rows, query) if len(rows) else np.zeros(0)
        # Per artist, best fit first; ties keep the artist's most-listened-first order.
        order = np.lexsort((-fit, group))
        rows, fit, group = rows[order], fit[order], group[order]
        sizes = np.bincount(group, minlength=len(artist_rows))
        top = rank_in_runs(sizes) < k
        ptr = np.zeros(len(artist_rows) + 1, dtype=np.int64)
        np.cumsum(np.minimum(sizes, k), out=ptr[1:])
        return rows[top], fit[top], ptr

    def search_items(
        self, query: np.ndarray, k: int, exclude_items: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Item-to-item retrieval over the cosine index: eligible tracks near ``query``.

        Returns
        -------
        track_rows, cosines : ndarray, shape (m,) with m <= k
        """
        a = self.artifact
        if a.item_index.ntotal == 0 or not np.any(query):
            return np.zeros(0, np.int64), np.zeros(0)
        k = int(min(k, a.item_index.ntotal))
        scores, ids = a.item_index.search(
            query[None, :].astype(np.float32),
            k,
            exclude=[exclude_items] if exclude_items is not None else None,
            blocked=self.blocked_items if len(self.blocked_items) else None,
        )
        ok = ids[0] >= 0
        return a.item_track[ids[0][ok]], scores[0][ok].astype(np.float64)

    def artist_search(self, artist_row: int, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`search_items` for an artist's own unit vector, from the artifact's stored answers.

        The query of an artist radio without a listener; its answer was stored
        at publish time (:mod:`recsys.retrieval.answers`), so no graph walk.

        Returns
        -------
        (track_rows, cosines) or None
            Shape (k,) each, as :meth:`search_items` would return them with
            nothing excluded; ``None`` when the live search must run: no stored
            answers or not deep enough, the artist has no vector, or one of
            the ``k`` stored tracks was taken down since (the live search then
            excludes it inside faiss, before retrieval).
        """
        a = self.artifact
        stored = a.artist_answers
        if stored is None or not self.artist_has_vector[artist_row]:
            return None
        got = stored.first(artist_row, min(k, a.item_index.ntotal), self._item_blocked)
        if got is None:
            return None
        cos, ids = a.item_index.rank(self.artist_unit[artist_row], got)
        return a.item_track[ids], cos.astype(np.float64)

    # ----------------------------------------------------------------- users

    def user_row(self, user_id: str | None) -> int | None:
        if user_id is None or user_id in self.erased_users:
            return None
        return self.artifact.user_row(user_id)

    def seen_items(self, user_row: int) -> np.ndarray:
        seen = self.artifact.seen
        return seen.indices[seen.indptr[user_row] : seen.indptr[user_row + 1]].astype(np.int64)

    def seen_tracks(self, user_row: int) -> np.ndarray:
        return self.artifact.item_track[self.seen_items(user_row)]

    def listened_artists(self, user_row: int) -> tuple[np.ndarray, np.ndarray]:
        """Artists a user streamed, most distinct tracks first.

        Returns
        -------
        artist_rows, tracks_heard : ndarray, shape (m,)
        """
        items = self.seen_items(user_row)
        artists, counts = np.unique(self.artifact.item_artist[items], return_counts=True)
        order = np.lexsort((artists, -counts))
        return artists[order], counts[order].astype(np.float64)

    def user_unit(self, user_row: int) -> np.ndarray:
        return unit_rows(self.artifact.user_factors[user_row])

    # ----------------------------------------------------------------- graph, tags

    def neighbours(self, artist_row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Graph neighbours still available: rows, scores, provenance names."""
        rows, scores, prov = self.graph.neighbours(artist_row)
        ok = self.artist_available[rows]
        names = np.array(PROVENANCES, dtype=object)[prov[ok]]
        return rows[ok], scores[ok], names

    def top_tag(self, artist_rows: np.ndarray, weights: np.ndarray, used: set[str]) -> str | None:
        """The tag carrying most of a group of artists' weight, not already used."""
        total: dict[str, float] = {}
        ptr, names, codes, tag_weights = self._tags
        for r, w in zip(artist_rows.tolist(), weights.tolist(), strict=True):
            lo, hi = int(ptr[r]), int(ptr[r + 1])
            for code, tw in zip(codes[lo:hi].tolist(), tag_weights[lo:hi].tolist(), strict=True):
                tag = names[code]
                total[tag] = total.get(tag, 0.0) + w * tw
        for tag, _ in sorted(total.items(), key=lambda kv: (-kv[1], kv[0])):
            if tag not in used:
                return tag
        return None

    def reference_day(self) -> np.datetime64:
        """The release radar's "today": setting, else the data window's end, else today."""
        ref = self.settings.release_reference
        if ref is None:
            end = (self.artifact.manifest.get("data", {}).get("window") or {}).get("end")
            if end:
                ref = pd.Timestamp(end).date()
        if ref is None:
            ref = dt.datetime.now(dt.UTC).date()
        return np.datetime64(ref, "D")


def _tag_lookup(
    tags: pd.DataFrame | None, artist_index: pd.Index
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Per artist row, its tags with weights normalised to sum 1, as CSR arrays.

    Returns
    -------
    ptr : ndarray, shape (n_artists + 1,), int64
        Tags of artist row ``a`` are entries ``ptr[a]:ptr[a + 1]``, in the
        frame's order.
    names : list of str
        The distinct tags; ``codes`` index it.
    codes : ndarray, shape (n_entries,), int32
    weights : ndarray, shape (n_entries,), float64

    Notes
    -----
    Arrays rather than a dict of lists of tuples: on the 1M-track benchmark
    artifact (100,000 tags of 50,000 artists) the dict held 27 MB of Python
    objects per loaded engine.
    """
    n = len(artist_index)
    empty = (np.zeros(n + 1, np.int64), [], np.zeros(0, np.int32), np.zeros(0, np.float64))
    if tags is None or tags.empty:
        return empty
    rows = index_rows(artist_index, tags["artist_id"])  # in chunks (see recsys.lookup)
    w = pd.to_numeric(tags["weight"], errors="coerce").fillna(1.0).to_numpy(np.float64)
    frame = pd.DataFrame({"row": rows, "tag": tags["tag"].astype(str).to_numpy(), "w": w})
    frame = frame.loc[(frame["row"] >= 0) & (frame["w"] > 0)]
    if frame.empty:
        return empty
    frame["w"] = frame["w"] / frame.groupby("row")["w"].transform("sum")
    order = np.argsort(frame["row"].to_numpy(), kind="stable")  # the frame's order per artist
    codes, names = pd.factorize(frame["tag"].to_numpy()[order])
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(frame["row"].to_numpy()[order], minlength=n), out=ptr[1:])
    return ptr, [str(t) for t in names], codes.astype(np.int32), frame["w"].to_numpy()[order]
