"""Co-listening evidence between artists, counted in distinct accounts.

A *basket* is what one account heard together: a listening session (streams
of one user at most ``session_gap`` apart) or, for ``plays``-only data that
has no time, the user's whole profile. Two artists in one basket are
co-listened. Each account counts **once** per artist pair, however many
sessions or streams it has: a stream farm that loops a target next to a
popular artist a thousand times weighs as much as one listener who did it
once. That per-account cap is what makes the counts robust to volume.

Pairs are generated fully vectorised, in chunks of whole users so that the
per-account de-duplication never crosses a chunk, and merged into running
counts so that memory stays bounded by the number of distinct pairs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from recsys.graph._arrays import unique, unique_counts, unique_inverse

logger = logging.getLogger(__name__)

#: Pairs generated per chunk before de-duplication (bounds the temporaries).
CHUNK_PAIRS = 4_000_000


@dataclass(frozen=True)
class CoListening:
    """Artist pairs with the distinct accounts that co-listened them.

    Attributes
    ----------
    a, b
        Artist rows of each pair, ``a < b``, shape (n_pairs,), int64.
    shared
        Distinct accounts that co-listened the pair, shape (n_pairs,), int64.
    listeners
        Distinct accounts per artist, shape (n_artists,), int64.
    baskets
        Number of baskets (sessions or profiles) seen.
    """

    a: np.ndarray
    b: np.ndarray
    shared: np.ndarray
    listeners: np.ndarray
    baskets: int


def _baskets(
    user: np.ndarray,
    artist: np.ndarray,
    ts_ms: np.ndarray | None,
    weight: np.ndarray,
    n_artists: int,
    session_gap_ms: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (basket, artist) entries, grouped by basket, baskets grouped by user.

    Returns
    -------
    basket_user : ndarray, shape (n_baskets,)
        Account of each basket (baskets of one account are consecutive).
    entry_basket : ndarray, shape (n_entries,)
        Basket of each entry, non-decreasing.
    entry_artist : ndarray, shape (n_entries,)
    entry_weight : ndarray, shape (n_entries,)
        Plays (or summed ``plays``) of the artist in the basket.
    """
    if ts_ms is None:
        basket = user
    else:
        order = np.lexsort((ts_ms, user))
        user, artist, ts_ms, weight = user[order], artist[order], ts_ms[order], weight[order]
        new = np.ones(len(user), dtype=bool)
        new[1:] = (user[1:] != user[:-1]) | (np.diff(ts_ms) > session_gap_ms)
        basket = np.cumsum(new) - 1
    key = basket * n_artists + artist
    uniq, inverse = unique_inverse(key)
    entry_weight = np.bincount(inverse, weights=weight, minlength=len(uniq))
    basket_ids, entry_basket = unique_inverse(uniq // n_artists)
    owner = np.zeros(int(basket.max()) + 1, dtype=np.int64)
    owner[basket] = user  # a basket never spans accounts
    return owner[basket_ids], entry_basket.astype(np.int64), uniq % n_artists, entry_weight


def _cap_baskets(
    entry_basket: np.ndarray, entry_artist: np.ndarray, entry_weight: np.ndarray, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keep each basket's ``cap`` most played artists (grouping preserved)."""
    order = np.lexsort((entry_artist, -entry_weight, entry_basket))
    eb, ea = entry_basket[order], entry_artist[order]
    starts = np.flatnonzero(np.r_[True, eb[1:] != eb[:-1]])
    rank = np.arange(len(eb)) - np.repeat(starts, np.diff(np.r_[starts, len(eb)]))
    keep = rank < cap
    eb, ea = eb[keep], ea[keep]
    # Within a basket, artists ascending: pairs come out as (lo, hi).
    order = np.lexsort((ea, eb))
    return eb[order], ea[order]


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(start, start + size)`` for each pair, shape (sizes.sum(),)."""
    offsets = np.cumsum(sizes) - sizes
    return np.repeat(starts, sizes) + (np.arange(int(sizes.sum())) - np.repeat(offsets, sizes))


def _pairs_within(
    starts: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (i < j) pairs of entry positions within each basket.

    Parameters
    ----------
    starts, sizes
        Offset and size of each basket in the entry arrays, shape (n_baskets,).

    Returns
    -------
    left, right : ndarray, shape (n_pairs,)
        Entry positions of the two members of every pair.
    basket : ndarray, shape (n_pairs,)
        Index (into ``starts``) of the basket of each pair.
    """
    pos = _ranges(starts, sizes)
    basket_of = np.repeat(np.arange(len(starts)), sizes)
    # Entry p of a basket ending at e pairs with the e - p - 1 entries after it.
    partners = (starts + sizes)[basket_of] - pos - 1
    left = np.repeat(pos, partners)
    first = np.cumsum(partners) - partners
    right = left + 1 + (np.arange(int(partners.sum())) - np.repeat(first, partners))
    return left, right, np.repeat(basket_of, partners)


def co_listening(
    user: np.ndarray,
    artist: np.ndarray,
    n_artists: int,
    *,
    ts_ms: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    session_gap_ms: int = 30 * 60 * 1000,
    max_basket_artists: int = 50,
    min_shared: int = 1,
) -> CoListening:
    """Distinct accounts per co-listened artist pair.

    Parameters
    ----------
    user, artist
        One row per training event: account and artist rows, shape (n,).
    n_artists
        Number of artist rows.
    ts_ms
        Event time in ms, shape (n,); ``None`` (plays data): a user's whole
        profile is one basket.
    weight
        Plays per event, shape (n,); default 1.
    session_gap_ms
        Largest gap between two streams of one session.
    max_basket_artists
        A basket keeps its most played artists up to this many.
    min_shared
        Pairs with fewer distinct accounts are dropped.

    Returns
    -------
    CoListening
    """
    user = np.asarray(user, dtype=np.int64)
    artist = np.asarray(artist, dtype=np.int64)
    w = np.ones(len(user)) if weight is None else np.asarray(weight, dtype=np.float64)
    listeners = np.zeros(n_artists, dtype=np.int64)
    empty = CoListening(
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), listeners, 0
    )
    if len(user) == 0:
        return empty
    ua = unique(user * n_artists + artist)
    listeners = np.bincount(ua % n_artists, minlength=n_artists).astype(np.int64)

    basket_user, eb, ea, ew = _baskets(user, artist, ts_ms, w, n_artists, session_gap_ms)
    eb, ea = _cap_baskets(eb, ea, ew, max_basket_artists)
    n_baskets = len(basket_user)
    sizes = np.bincount(eb, minlength=n_baskets)
    starts = np.cumsum(sizes) - sizes
    n_pairs = sizes * (sizes - 1) // 2
    # Chunk on user boundaries so that one account's pairs are de-duplicated together.
    user_change = np.r_[True, basket_user[1:] != basket_user[:-1]]
    cum = np.cumsum(n_pairs)
    bounds = [0]
    next_limit = CHUNK_PAIRS
    for i in np.flatnonzero(user_change)[1:]:
        if cum[i - 1] >= next_limit:
            bounds.append(int(i))
            next_limit = cum[i - 1] + CHUNK_PAIRS
    bounds.append(n_baskets)

    nn = np.int64(n_artists) * n_artists
    keys: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    pending = 0
    for lo_b, hi_b in zip(bounds[:-1], bounds[1:], strict=True):
        s, z = starts[lo_b:hi_b], sizes[lo_b:hi_b]
        keep = z > 1
        s, z = s[keep], z[keep]
        if len(s) == 0:
            continue
        left, right, bidx = _pairs_within(s, z)
        pair = ea[left] * n_artists + ea[right]
        users_of = basket_user[lo_b:hi_b][keep][bidx]
        # One count per (account, pair): the per-account cap.
        uniq = unique((users_of - users_of.min()) * nn + pair)
        pk, pc = unique_counts(uniq % nn)
        keys.append(pk)
        counts.append(pc)
        pending += len(pk)
        if pending > 4 * CHUNK_PAIRS and len(keys) > 1:
            keys, counts = _merge(keys, counts)
            pending = len(keys[0])
    if not keys:
        return CoListening(empty.a, empty.b, empty.shared, listeners, n_baskets)
    (pk,), (pc,) = _merge(keys, counts)
    keep = pc >= min_shared
    pk, pc = pk[keep], pc[keep]
    logger.info(
        "co-listening: %d baskets, %d artist pairs with >= %d shared accounts",
        n_baskets,
        len(pk),
        min_shared,
    )
    return CoListening(pk // n_artists, pk % n_artists, pc.astype(np.int64), listeners, n_baskets)


def _merge(keys: list[np.ndarray], counts: list[np.ndarray]):
    k = np.concatenate(keys)
    c = np.concatenate(counts)
    uniq, inv = unique_inverse(k)
    return [uniq], [np.bincount(inv, weights=c, minlength=len(uniq)).astype(np.int64)]
