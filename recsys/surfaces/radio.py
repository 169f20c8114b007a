"""Artist and track radio: from a seed through the graph and item-to-item retrieval.

Composition (scores only order the list; the surface returns them):

1. a track radio opens with its seed track (when it is in the pool);
2. the seed artist's **editorial** neighbours, in the graph's order, score
   highest: their best tracks lead the radio;
3. the seed artist's own tracks;
4. its **learned** neighbours, weighted by their graph score;
5. tracks near the seed in the cosine item index (the seed track's vector,
   or the artist's), whatever their artist;
6. when all that falls short of ``size``, the most-listened pool tracks.

Within an artist, the tracks that fit the query best come first (the
seed's vector, blended with the user's when personalised), and each further
track of the same artist is discounted. A personalised radio holds back the
tracks the user already streamed. The per-artist cap and the interleaving
are those of :mod:`recsys.surfaces.arrange`.
"""

from __future__ import annotations

import logging

import numpy as np

from recsys.graph.build import LEARNED
from recsys.surfaces.arrange import Candidates
from recsys.surfaces.context import POPULAR, SurfaceContext, rank_in_runs, unit_rows
from recsys.surfaces.recommend import Item, Reason

logger = logging.getLogger(__name__)

#: Score of the next track by an artist already in the list, relative to its previous one.
ARTIST_DECAY = 0.85
#: Affinity band of the editorial neighbours (first to last).
EDITORIAL_AFFINITY = (1.0, 0.95)
#: Affinity of the seed artist's own tracks: below every editorial neighbour's first track.
SEED_ARTIST_AFFINITY = 0.85
#: Learned neighbours get this times their graph score.
LEARNED_AFFINITY = 0.8
#: Item-to-item matches get this times their cosine.
RETRIEVAL_AFFINITY = 0.7


def query_vector(
    ctx: SurfaceContext, seed_artist: int, seed_track: int | None, user_row: int | None
) -> np.ndarray | None:
    """Unit query of a radio: the seed's vector, blended with the user's; ``None`` if none."""
    q = None
    if seed_track is not None and ctx.model_row[seed_track] >= 0:
        q = ctx.item_unit[ctx.model_row[seed_track]].astype(np.float32)  # float16 when so stored
    elif ctx.artist_has_vector[seed_artist]:
        q = ctx.artist_unit[seed_artist]
    if user_row is not None:
        u = ctx.user_unit(user_row)
        if q is None:
            q = u
        else:
            w = ctx.settings.personal_weight
            q = unit_rows((1.0 - w) * q + w * u)
    return None if q is None or not np.any(q) else np.asarray(q, dtype=np.float32)


def radio(
    ctx: SurfaceContext,
    seed_artist: int,
    size: int,
    *,
    seed_track: int | None = None,
    user_row: int | None = None,
) -> list[Item]:
    """Tracks of a radio seeded by an artist (and optionally one of its tracks).

    Parameters
    ----------
    ctx
        Surface context.
    seed_artist
        Artist row of the seed.
    size
        Tracks wanted (> 0).
    seed_track
        Catalogue row of the seed track (track radio).
    user_row
        Model row of the listener when personalised.

    Returns
    -------
    list of Item
        Pool tracks only, at most ``settings.max_per_artist`` per artist,
        artists interleaved; ``size`` of them whenever the pool allows. A
        seed outside the pool without graph neighbours or a vector gets an
        empty list (nothing vouches for what would follow it).
    """
    if size <= 0:
        raise ValueError("size must be positive")
    name = ctx.artist_name(seed_artist)
    seed_id = ctx.artist_id(seed_artist)
    query = query_vector(ctx, seed_artist, seed_track, user_row)
    held_back = ctx.seen_tracks(user_row) if user_row is not None else np.zeros(0, np.int64)
    nb_rows, nb_scores, nb_prov = ctx.neighbours(seed_artist)
    if len(nb_rows) == 0 and query is None and not ctx.artist_available[seed_artist]:
        logger.info("radio of %s: outside the pool, no neighbours, no vector", seed_id)
        return []

    cands = Candidates()
    if seed_track is not None and ctx.eligible[seed_track]:
        cands.add(
            [seed_track],
            2.0,
            Reason("seed_track", "The track this radio started from", seed_id, name),
        )
    editorial = nb_prov != LEARNED
    n_ed = max(int(editorial.sum()), 1)
    hi, lo = EDITORIAL_AFFINITY
    # Editorial neighbours in the graph's order span the affinity band; learned
    # ones get their graph score, scaled.
    ed_rank = np.cumsum(editorial) - 1
    affinity = np.where(
        editorial, hi - (hi - lo) * ed_rank / n_ed, LEARNED_AFFINITY * nb_scores.astype(np.float64)
    )
    reasons = []
    for b, prov in zip(nb_rows.tolist(), nb_prov.tolist(), strict=True):
        b_name = ctx.artist_name(b)
        if prov != LEARNED:
            reasons.append(
                Reason("editorial_seed", f"Editors pair {b_name} with {name}", seed_id, name)
            )
        else:
            reasons.append(
                Reason("similar_artist", f"{b_name} is similar to {name}", seed_id, name)
            )
    reasons.append(Reason("seed_artist", f"By {name}", seed_id, name))
    # Every neighbour's best tracks and the seed artist's own (last: added after the
    # neighbours', as ties keep insertion order) in one pass, scored at once: the
    # artist's affinity, discounted for each further track of the same artist.
    artists = np.append(nb_rows, seed_artist)
    affinity = np.append(affinity, SEED_ARTIST_AFFINITY)
    tracks, fit, ptr = ctx.best_tracks_many(artists, query, held_back, ctx.settings.max_per_artist)
    sizes = np.diff(ptr)
    group = np.repeat(np.arange(len(artists)), sizes)
    scores = affinity[group] * ARTIST_DECAY ** rank_in_runs(sizes) * (0.9 + 0.1 * fit)
    cands.add_groups(tracks, scores, group, reasons)
    if query is not None:
        fetch = size * ctx.settings.radio_fetch_factor
        # An artist radio without a listener asks the artist's own vector, whose
        # answer the artifact stores; anything else searches live.
        found = (
            ctx.artist_search(seed_artist, fetch)
            if seed_track is None and user_row is None
            else None
        )
        if found is None:
            exclude = ctx.model_row[held_back]
            found = ctx.search_items(query, fetch, exclude[exclude >= 0])
        rows, cos = found
        cands.add(
            rows,
            RETRIEVAL_AFFINITY * np.maximum(cos, 0.0),
            Reason("seed_artist", f"Sounds like {name}", seed_id, name),
        )
    picked = cands.arrange(size, ctx.track_artist, ctx.settings.max_per_artist)
    if len(picked) < size:
        # The graph and the index ran dry: fill from the most-listened pool tracks.
        rest = ctx.popular_rows[~np.isin(ctx.popular_rows, held_back)]
        cands.add(rest, 1e-3 * ctx.fit(rest, None), POPULAR)
        picked = cands.arrange(size, ctx.track_artist, ctx.settings.max_per_artist)
    return ctx.items(picked)
