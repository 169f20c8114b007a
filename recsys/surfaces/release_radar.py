"""Release radar: recent pool releases by the artists a user listens to and their neighbours.

A release is recent when its ``release_date`` lies within
``release_window_days`` before the reference date (by default the end of
the artifact's data window, i.e. its latest stream) and not after it.

Artist affinity, highest kept per artist:

- an artist the user listens to: its share of the user's listening,
  scaled into [0.5, 1];
- an editorial neighbour of one: 0.6 times that artist's affinity;
- a learned neighbour: 0.5 times its graph score times that affinity.

A track scores its artist's affinity times ``0.7 + 0.3 * freshness``
(1 on the reference day, 0 at the window's start). Other recent pool
releases fill the list when these run short, ranked by how well they fit
the user's vector. Tracks the user already streamed are held back. A user
the model does not know gets the recent releases with the most listeners,
editorially seeded artists first (``personalized: false``).
"""

from __future__ import annotations

import logging

import numpy as np

from recsys.graph.build import LEARNED
from recsys.lookup import isin
from recsys.surfaces.arrange import Candidates
from recsys.surfaces.context import SurfaceContext
from recsys.surfaces.recommend import Item, Reason

logger = logging.getLogger(__name__)

#: Listened artists whose graph neighbours are considered.
NEIGHBOUR_SOURCES = 30
EDITORIAL_FACTOR = 0.6
LEARNED_FACTOR = 0.5
#: Scores of the fill (recent releases without a link to the user) stay below this.
FILL_AFFINITY = 0.3


def recent_tracks(ctx: SurfaceContext) -> tuple[np.ndarray, np.ndarray]:
    """Eligible tracks released in the window, and their freshness in [0, 1]."""
    ref = ctx.reference_day()
    window = ctx.settings.release_window_days
    day = ctx.release_day
    known = ~np.isnat(day)
    age = np.full(len(day), np.iinfo(np.int64).max, dtype=np.int64)
    age[known] = (ref - day[known]).astype(np.int64)
    rows = np.flatnonzero(ctx.eligible & known & (age >= 0) & (age <= window))
    return rows, 1.0 - age[rows] / window


def release_radar(ctx: SurfaceContext, user_row: int | None, size: int) -> list[Item]:
    """Recent releases for a user (``None``: not personalised).

    Parameters
    ----------
    ctx
        Surface context.
    user_row
        Model row of the user, or ``None``.
    size
        Tracks wanted (> 0).

    Returns
    -------
    list of Item
        At most ``settings.max_per_artist`` per artist, artists interleaved.
    """
    if size <= 0:
        raise ValueError("size must be positive")
    rows, fresh = recent_tracks(ctx)
    if len(rows) == 0:
        return []
    by_artist = ctx.track_artist[rows]
    n_artists = len(ctx.artist_available)
    affinity = np.zeros(n_artists)
    reason: dict[int, Reason] = {}
    cands = Candidates()
    if user_row is not None:
        seen = ctx.seen_tracks(user_row)
        keep = ~isin(rows, seen)
        rows, fresh, by_artist = rows[keep], fresh[keep], by_artist[keep]
        artists, heard = ctx.listened_artists(user_row)
        weight = 0.5 + 0.5 * heard / heard.max() if len(heard) else heard
        for a, w in zip(artists.tolist(), weight.tolist(), strict=True):
            affinity[a] = w
            name = ctx.artist_name(a)
            reason[a] = Reason(
                "new_release", f"New from {name}, whom you listen to", ctx.artist_id(a), name
            )
        for a, w in zip(artists[:NEIGHBOUR_SOURCES].tolist(), weight.tolist(), strict=False):
            a_name, a_id = ctx.artist_name(a), ctx.artist_id(a)
            nb, scores, prov = ctx.neighbours(a)
            for b, s, p in zip(nb.tolist(), scores.tolist(), prov.tolist(), strict=True):
                aff = w * (EDITORIAL_FACTOR if p != LEARNED else LEARNED_FACTOR * s)
                if aff <= affinity[b]:
                    continue
                affinity[b] = aff
                b_name = ctx.artist_name(b)
                reason[b] = (
                    Reason(
                        "editorial_seed",
                        f"New from {b_name}, paired by editors with {a_name}",
                        a_id,
                        a_name,
                    )
                    if p != LEARNED
                    else Reason(
                        "similar_artist", f"New from {b_name}, similar to {a_name}", a_id, a_name
                    )
                )
        linked = affinity[by_artist] > 0
        for b in np.unique(by_artist[linked]).tolist():
            mine = by_artist == b
            cands.add(rows[mine], affinity[b] * (0.7 + 0.3 * fresh[mine]), reason[b])
        fit = ctx.fit(rows[~linked], ctx.user_unit(user_row))
        fill_reason = Reason("new_release", "New on the platform, close to your listening")
        cands.add(rows[~linked], FILL_AFFINITY * fit * (0.7 + 0.3 * fresh[~linked]), fill_reason)
    else:
        pop = ctx.fit(rows, None)
        editorial = np.where(ctx.seeded_artist[by_artist], 1.0, 0.8)
        score = (0.5 + 0.5 * pop) * editorial * (0.7 + 0.3 * fresh)
        cands.add(rows, score, Reason("new_release", "New on the platform"))
    return ctx.items(cands.arrange(size, ctx.track_artist, ctx.settings.max_per_artist))
