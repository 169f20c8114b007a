"""Turn scored candidate tracks into a playable list.

Every listening surface gathers candidates from several sources (editorial
neighbours, learned neighbours, item-to-item retrieval, the user's own
tracks), each with a score and a :class:`~recsys.surfaces.recommend.Reason`.
:class:`Candidates` keeps, per track, its best-scored entry; :meth:`arrange`
then applies the same rules everywhere:

1. best score first;
2. at most ``max_per_artist`` tracks per artist;
3. artists interleaved: the next track is the best remaining one whose
   artist differs from the previous track's, falling back to the best one
   only when no other artist is left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recsys.surfaces.recommend import Reason


@dataclass
class Candidates:
    """Scored candidate tracks (catalogue rows) with their reasons."""

    _rows: list[np.ndarray] = field(default_factory=list)
    _scores: list[np.ndarray] = field(default_factory=list)
    _reasons: list[np.ndarray] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)

    def add(self, track_rows: np.ndarray, scores: np.ndarray | float, reason: Reason) -> None:
        """Add tracks (shape (m,)) with scores (shape (m,) or one value) and one reason."""
        rows = np.asarray(track_rows, dtype=np.int64).ravel()
        if rows.size == 0:
            return
        self._rows.append(rows)
        self._scores.append(np.broadcast_to(np.asarray(scores, dtype=np.float64), rows.shape))
        self._reasons.append(np.full(rows.size, len(self.reasons), dtype=np.int64))
        self.reasons.append(reason)

    def add_groups(
        self, track_rows: np.ndarray, scores: np.ndarray, group: np.ndarray, reasons: list[Reason]
    ) -> None:
        """Add tracks of several sources at once, each with its source's reason.

        Parameters
        ----------
        track_rows, scores
            Shape (m,).
        group
            Shape (m,): index into ``reasons`` of each track's source.
        reasons
            One reason per source.
        """
        rows = np.asarray(track_rows, dtype=np.int64).ravel()
        if rows.size == 0:
            return
        self._rows.append(rows)
        self._scores.append(np.asarray(scores, dtype=np.float64).ravel())
        self._reasons.append(np.asarray(group, dtype=np.int64).ravel() + len(self.reasons))
        self.reasons.extend(reasons)

    def __len__(self) -> int:
        return int(sum(len(r) for r in self._rows))

    def rows(self) -> np.ndarray:
        """Every candidate track row so far (with repeats), shape (n,)."""
        return np.concatenate(self._rows) if self._rows else np.zeros(0, np.int64)

    def arrange(
        self, size: int, track_artist: np.ndarray, max_per_artist: int
    ) -> list[tuple[int, float, Reason]]:
        """The best ``size`` tracks under the per-artist cap, artists interleaved.

        Parameters
        ----------
        size
            Most tracks returned.
        track_artist
            Artist row of every catalogue track, shape (n_tracks,).
        max_per_artist
            Cap per artist.

        Returns
        -------
        list of (track_row, score, reason)
        """
        if not self._rows:
            return []
        rows = np.concatenate(self._rows)
        scores = np.concatenate(self._scores)
        reason = np.concatenate(self._reasons)
        # Best score first; ties keep insertion order (sources are added best first).
        order = np.lexsort((np.arange(len(rows)), -scores))
        rows, scores, reason = rows[order], scores[order], reason[order]
        _, first = np.unique(rows, return_index=True)
        keep = np.sort(first)  # one entry per track: its best
        rows, scores, reason = rows[keep], scores[keep], reason[keep]
        artists = track_artist[rows]
        rank = _rank_within(artists)
        capped = rank < max_per_artist
        rows, scores, reason, artists = (
            rows[capped],
            scores[capped],
            reason[capped],
            artists[capped],
        )
        picked = interleave(artists, size)
        return [(int(rows[i]), float(scores[i]), self.reasons[reason[i]]) for i in picked]


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0-based occurrence number of each element within its group, in order."""
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if len(g) else np.zeros(0, np.int64)
    rank_sorted = np.arange(len(g)) - np.repeat(starts, np.diff(np.r_[starts, len(g)]))
    rank = np.empty(len(g), dtype=np.int64)
    rank[order] = rank_sorted
    return rank


def interleave(artists: np.ndarray, size: int) -> list[int]:
    """Positions of up to ``size`` items, best first, no artist twice in a row where avoidable.

    Parameters
    ----------
    artists
        Artist of each candidate, candidates best first, shape (n,).
    size
        Most positions returned.

    Returns
    -------
    list of int
        Indices into ``artists``. The chosen set is the best ``size``
        candidates, except that when one artist would fill more than half of
        it (so that two of its tracks must touch), its weakest tracks give
        way to the next candidates by other artists. The order then follows
        the scores, skipping the previous track's artist, unless the artist
        with most tracks left must be placed now to keep the rest separable.
    """
    artists = np.asarray(artists).tolist()  # Python scalars: the loops below are per item
    n = len(artists)
    chosen = list(range(min(size, n)))
    nxt = len(chosen)
    while chosen:
        counts: dict = {}
        for i in chosen:
            counts[artists[i]] = counts.get(artists[i], 0) + 1
        top, c = max(counts.items(), key=lambda kv: kv[1])
        if c <= (len(chosen) + 1) // 2:
            break
        while nxt < n and artists[nxt] == top:
            nxt += 1
        if nxt >= n:
            break  # nothing else left: the repeats cannot be avoided
        weakest = max(i for i in chosen if artists[i] == top)
        chosen.remove(weakest)
        chosen.append(nxt)
        nxt += 1
    chosen.sort()

    out: list[int] = []
    remaining = chosen
    left: dict = {}
    for i in remaining:
        left[artists[i]] = left.get(artists[i], 0) + 1
    last = None
    # Counts only fall, so the largest count seen bounds every artist's count; the
    # scan for the largest is only needed once the bound exceeds half of what is
    # left (typically only for the last few picks).
    bound = max(left.values(), default=0)
    while remaining:
        total = len(remaining)
        # An artist holding more than half of what is left must go now, or never fit
        # (at most one artist can: the one with most left).
        forced = None
        if bound > total // 2:
            most = max(left, key=left.__getitem__)
            bound = left[most]
            forced = most if bound > total // 2 and most != last else None
        pick = None
        for j, i in enumerate(remaining):
            a = artists[i]
            if a == last or (forced is not None and a != forced):
                continue
            pick = j
            break
        if pick is None:
            pick = 0  # unavoidable: only the previous artist is left
        i = remaining.pop(pick)
        out.append(i)
        left[artists[i]] -= 1
        last = artists[i]
    return out
