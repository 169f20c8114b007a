"""Mixes: a user's listening split into coherent styles, each a blend of familiar and new.

1. **Profile.** The user's most-listened artists (distinct tracks streamed);
   for a user the model does not know, the platform's most-listened pool
   artists stand in (non-personalised).
2. **Styles.** The profile's artists are grouped by average-linkage
   clustering of their vectors (cosine), cut where the average similarity
   falls below ``mix_merge_similarity``; groups holding less than
   ``mix_min_share`` of the listening are dropped, and the ``n`` heaviest
   groups become mixes.
3. **Name.** The tag carrying most of the group's weight (``artist_tags``),
   else the group's lead artist.
4. **Tracks.** ``mix_familiar_share`` of the mix are tracks the user
   streamed by the group's artists; the rest are discoveries: unheard tracks
   of the group's artists, of their graph neighbours (editorial first) and
   of the item index near the group's centroid. A discovery must belong to
   this group's style: its artist's vector is closer to this group's centroid
   than to any other group's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from recsys.graph.build import LEARNED
from recsys.surfaces.arrange import Candidates
from recsys.surfaces.context import POPULAR, SurfaceContext, unit_rows
from recsys.surfaces.recommend import Item, Reason

logger = logging.getLogger(__name__)

#: Affinities of the discovery sources (the group's own artists score highest).
OWN_AFFINITY = 1.0
EDITORIAL_AFFINITY = 0.9
LEARNED_AFFINITY = 0.8
RETRIEVAL_AFFINITY = 0.7
ARTIST_DECAY = 0.85
#: A group's heaviest artists whose neighbours feed its discoveries (bounds the work).
MAX_SOURCE_ARTISTS = 8
#: Graph neighbours considered per source artist.
MAX_NEIGHBOURS = 10


@dataclass(frozen=True)
class Mix:
    """One mix: its name, lead artist and tracks."""

    name: str
    lead_artist_id: str
    items: list[Item]


@dataclass(frozen=True)
class StyleGroup:
    """Artists of one style in a profile, heaviest first."""

    artists: np.ndarray
    weights: np.ndarray
    centroid: np.ndarray


def style_groups(
    ctx: SurfaceContext, artists: np.ndarray, weights: np.ndarray, n: int
) -> list[StyleGroup]:
    """Group a profile's artists into at most ``n`` styles, heaviest first.

    Parameters
    ----------
    artists, weights
        Artist rows and listening weights, shape (m,).
    n
        Most groups returned.
    """
    st = ctx.settings
    vec = ctx.artist_has_vector[artists]
    # Artists without a vector cannot be placed by style: they stay out of the grouping.
    artists, weights = artists[vec], weights[vec]
    if len(artists) == 0:
        return []
    x = ctx.artist_unit[artists]
    if len(artists) == 1:
        labels = np.zeros(1, dtype=np.int64)
    else:
        tree = linkage(x.astype(np.float64), method="average", metric="cosine")
        labels = fcluster(tree, t=1.0 - st.mix_merge_similarity, criterion="distance") - 1
    total = weights.sum()
    groups = []
    for g in np.unique(labels):
        member = labels == g
        w = weights[member].sum()
        if w < st.mix_min_share * total:
            continue
        a, wa = artists[member], weights[member]
        order = np.lexsort((a, -wa))
        centroid = unit_rows((x[member] * wa[:, None]).sum(axis=0))
        groups.append(StyleGroup(a[order], wa[order], centroid))
    groups.sort(key=lambda grp: (-grp.weights.sum(), int(grp.artists[0])))
    if not groups:
        # Every style is a sliver: one mix of the heaviest ones.
        order = np.lexsort((artists, -weights))
        a, wa = artists[order], weights[order]
        groups = [StyleGroup(a, wa, unit_rows((x[order] * wa[:, None]).sum(axis=0)))]
    return groups[:n]


def _name(ctx: SurfaceContext, group: StyleGroup, used: set[str]) -> str:
    tag = ctx.top_tag(group.artists, group.weights / group.weights.sum(), used)
    if tag is not None:
        used.add(tag)
        return f"{tag} mix"
    name = f"{ctx.artist_name(int(group.artists[0]))} and similar artists"
    used.add(name)
    return name


def _mix_tracks(
    ctx: SurfaceContext,
    group: StyleGroup,
    centroids: np.ndarray,
    gi: int,
    size: int,
    user_row: int | None,
) -> list[Item]:
    st = ctx.settings
    cap = st.max_per_artist
    personal = user_row is not None
    seen = ctx.seen_tracks(user_row) if personal else np.zeros(0, np.int64)
    query = group.centroid
    if personal:
        query = unit_rows(
            (1 - st.personal_weight) * query + st.personal_weight * ctx.user_unit(user_row)
        )

    def same_style(artist_rows: np.ndarray) -> np.ndarray:
        # The artist's vector is closer to this group than to the user's other groups.
        sims = ctx.artist_unit[artist_rows] @ centroids.T  # (m, n_groups)
        ok = np.argmax(sims, axis=1) == gi
        return ok | ~ctx.artist_has_vector[artist_rows] | np.isin(artist_rows, group.artists)

    # ---- familiar: what the user streamed by this group's artists -------------
    familiar = Candidates()
    if personal:
        rows = seen[ctx.eligible[seen] & np.isin(ctx.track_artist[seen], group.artists)]
        fit = ctx.fit(rows, query)
        for b in np.unique(ctx.track_artist[rows]).tolist():
            mine = ctx.track_artist[rows] == b
            why = Reason("familiar", f"You listen to {ctx.artist_name(b)}", ctx.artist_id(b))
            familiar.add(rows[mine], fit[mine], why)
    # ---- discoveries in the style ---------------------------------------------
    disc = Candidates()
    weights = group.weights / group.weights.max()
    for a, w in zip(
        group.artists[:MAX_SOURCE_ARTISTS].tolist(),
        weights[:MAX_SOURCE_ARTISTS].tolist(),
        strict=True,
    ):
        a_name, a_id = ctx.artist_name(a), ctx.artist_id(a)
        if personal:
            why = Reason("listened_artist", f"Because you listen to {a_name}", a_id, a_name)
        else:
            why = POPULAR
        rows, fit = ctx.best_tracks(a, query, seen, cap)
        disc.add(rows, OWN_AFFINITY * w * ARTIST_DECAY ** np.arange(len(rows)) * fit, why)
        nb, scores, prov = ctx.neighbours(a)
        keep = ~np.isin(nb, group.artists)
        nb, scores, prov = nb[keep], scores[keep], prov[keep]
        if len(nb):
            keep = same_style(nb)
            nb, scores, prov = (
                nb[keep][:MAX_NEIGHBOURS],
                scores[keep][:MAX_NEIGHBOURS],
                prov[keep][:MAX_NEIGHBOURS],
            )
        for b, sc, p in zip(nb.tolist(), scores.tolist(), prov.tolist(), strict=True):
            b_name = ctx.artist_name(b)
            if p != LEARNED:
                aff = EDITORIAL_AFFINITY
                why = Reason("editorial_seed", f"Editors pair {b_name} with {a_name}", a_id, a_name)
            else:
                aff = LEARNED_AFFINITY * sc
                why = Reason("similar_artist", f"{b_name} is similar to {a_name}", a_id, a_name)
            rows, fit = ctx.best_tracks(b, query, seen, cap)
            disc.add(rows, aff * w * ARTIST_DECAY ** np.arange(len(rows)) * fit, why)
    exclude = ctx.model_row[seen] if personal else np.zeros(0, np.int64)
    exclude = exclude[exclude >= 0]
    rows, cos = ctx.search_items(query, size * st.radio_fetch_factor, exclude)
    outside = Candidates()  # off-style matches: only when the style runs dry
    if len(rows):
        style_ok = same_style(ctx.track_artist[rows])
        # The reason names the group's artist closest to each track.
        sims = ctx.artist_unit[group.artists] @ ctx.item_unit[ctx.model_row[rows]].T
        lead = group.artists[np.argmax(sims, axis=0)]
        for r, c, b, ok in zip(rows.tolist(), cos.tolist(), lead.tolist(), style_ok, strict=True):
            b_name, b_id = ctx.artist_name(b), ctx.artist_id(b)
            why = (
                Reason("listened_artist", f"Because you listen to {b_name}", b_id, b_name)
                if personal
                else Reason("similar_artist", f"Sounds like {b_name}", b_id, b_name)
            )
            (disc if ok else outside).add([r], RETRIEVAL_AFFINITY * max(c, 0.0), why)

    # ---- blend under one per-artist cap ---------------------------------------
    counts: dict[int, int] = {}
    taken: set[int] = set()

    def take(source: Candidates, quota: int) -> list[tuple[int, float, Reason]]:
        got: list[tuple[int, float, Reason]] = []
        if quota <= 0:
            return got
        for r, sc, why in source.arrange(len(source), ctx.track_artist, cap):
            if len(got) >= quota:
                break
            b = int(ctx.track_artist[r])
            if r in taken or counts.get(b, 0) >= cap:
                continue
            counts[b] = counts.get(b, 0) + 1
            taken.add(r)
            got.append((r, sc, why))
        return got

    fam = take(familiar, int(round(size * st.mix_familiar_share)) if personal else 0)
    new = take(disc, size - len(fam))
    fam += take(familiar, size - len(fam) - len(new))  # discoveries ran short
    new += take(outside, size - len(fam) - len(new))  # and the style ran dry
    merged = _spread(fam, new)
    final = Candidates()
    for pos, (r, _, why) in enumerate(merged):
        final.add([r], 1.0 - pos / max(len(merged), 1), why)
    own = {r: sc for r, sc, _ in merged}
    # The position score only orders the blend; each item keeps its own score.
    return [ctx.item(r, own[r], why) for r, _, why in final.arrange(size, ctx.track_artist, cap)]


def _spread(a: list, b: list) -> list:
    """Merge two ranked lists, spreading the shorter ``a`` evenly through ``b``."""
    if not a:
        return list(b)
    if not b:
        return list(a)
    out, ia, ib = [], 0, 0
    n = len(a) + len(b)
    for i in range(n):
        # Place an ``a`` item whenever it is behind its even share of the positions so far.
        if ia < len(a) and (ib >= len(b) or ia * n <= i * len(a)):
            out.append(a[ia])
            ia += 1
        else:
            out.append(b[ib])
            ib += 1
    return out


def mixes(ctx: SurfaceContext, user_row: int | None, n: int, size: int) -> tuple[list[Mix], bool]:
    """Up to ``n`` mixes of up to ``size`` tracks for a user (``None``: not personalised).

    Returns
    -------
    mixes : list of Mix
        Heaviest style first; fewer than ``n`` when the listening holds fewer styles.
    personalized : bool
    """
    if n <= 0 or size <= 0:
        raise ValueError("n and size must be positive")
    st = ctx.settings
    if user_row is not None:
        artists, weights = ctx.listened_artists(user_row)
        artists, weights = artists[: st.mix_max_artists], weights[: st.mix_max_artists]
    if user_row is None or len(artists) == 0:
        user_row = None
        # Non-personalised: the most-listened pool artists stand in for a profile.
        per_artist = np.bincount(
            ctx.track_artist[ctx.popular_rows],
            weights=ctx.listeners[ctx.popular_rows],
            minlength=len(ctx.artist_available),
        )
        artists = np.argsort(-per_artist, kind="stable")[: st.mix_max_artists]
        artists = artists[per_artist[artists] > 0]
        weights = per_artist[artists]
    groups = style_groups(ctx, artists, weights, n)
    if not groups:
        return [], user_row is not None
    centroids = np.stack([g.centroid for g in groups])
    used: set[str] = set()
    out = []
    for gi, group in enumerate(groups):
        items = _mix_tracks(ctx, group, centroids, gi, size, user_row)
        if items:
            out.append(Mix(_name(ctx, group, used), ctx.artist_id(int(group.artists[0])), items))
    return out, user_row is not None
