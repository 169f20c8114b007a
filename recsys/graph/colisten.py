"""Co-listening evidence between artists, counted in distinct accounts.

A *basket* is what one account heard together: a listening session (streams
of one user at most ``session_gap`` apart) or, for ``plays``-only data that
has no time, the user's whole profile. Two artists in one basket are
co-listened. Each account counts **once** per artist pair, however many
sessions or streams it has: a stream farm that loops a target next to a
popular artist a thousand times weighs as much as one listener who did it
once. That per-account cap is what makes the counts robust to volume.

Events are put in (account, time) order with one counting sort, then
processed in chunks of whole accounts: sessions, distinct (session, artist)
entries, the per-session cap and the session's artist pairs. Pairs are
compact integer keys (account within the chunk, then artist pair),
de-duplicated with one sort per chunk; the distinct (account, pair) keys of
all chunks are counted with one final sort. Chunks keep every temporary
small: on the ``large`` platform (16M kept streams, 64M pairs in sessions)
arrays of the whole event table each cost a fresh allocation, and the page
faults of those measured as much as the arithmetic. Counting with sparse
products (session x artist incidence) measured about twice as slow: the
per-account binarisation needs an (account, artist) x artist intermediate.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from recsys.graph._arrays import stable_order, unique

logger = logging.getLogger(__name__)

#: Events per chunk of whole accounts (a chunk's event arrays stay near 8 MB).
CHUNK_EVENTS = 1_000_000
#: Pairs generated at once before de-duplication (about 40 bytes of temporaries each).
CHUNK_PAIRS = 2_000_000
#: Distinct (account, pair) keys held per partition, in units of ``CHUNK_PAIRS``,
#: before they are merged into running counts (bounds memory on very large inputs).
MERGE_FACTOR = 4
#: Partitions of the pair keys (by first artist) counted separately: the final
#: count sorts each partition's keys, small arrays instead of one of all of them.
PARTITIONS = 64


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


def _time_order(user: np.ndarray, ts_ms: np.ndarray | None, n_users: int) -> np.ndarray:
    """Permutation putting events in (account, time) order, ties in input order.

    The same order as ``np.lexsort((ts_ms, user))``, by a counting sort on the
    account: event tables come in time order as a rule, and then that one
    pass suffices.

    Parameters
    ----------
    user
        Account row of each event, shape (n,).
    ts_ms
        Event time, shape (n,), or ``None`` (account order only).
    n_users
        Upper bound (exclusive) of the account rows.

    Returns
    -------
    numpy.ndarray
        Shape (n,), int64.
    """
    if ts_ms is not None and np.any(ts_ms[1:] < ts_ms[:-1]):
        by_time = np.argsort(ts_ms, kind="stable")
        return by_time[stable_order(user[by_time], n_users)]
    return stable_order(user, n_users)


def _baskets(
    user: np.ndarray,
    artist: np.ndarray,
    ts_ms: np.ndarray | None,
    weight: np.ndarray | None,
    n_artists: int,
    session_gap_ms: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (basket, artist) entries of events in (account, time) order.

    Parameters
    ----------
    user, artist
        Account and artist rows of each event, shape (n,), ``n >= 1``,
        grouped by account, in time order within an account.
    ts_ms
        Event time, shape (n,); ``None``: one basket per account.
    weight
        Plays per event, shape (n,); ``None``: one each.
    n_artists
        Number of artist rows.
    session_gap_ms
        Largest gap within a session.

    Returns
    -------
    basket_user : ndarray, shape (n_baskets,)
        Account of each basket (baskets of one account are consecutive).
    entry_basket : ndarray, shape (n_entries,)
        Basket of each entry (index into ``basket_user``), non-decreasing.
    entry_artist : ndarray, shape (n_entries,)
        Artist of each entry, ascending within a basket.
    entry_weight : ndarray, shape (n_entries,)
        Plays (or summed ``plays``) of the artist in the basket.
    """
    new = np.empty(len(user), dtype=bool)
    new[0] = True
    np.not_equal(user[1:], user[:-1], out=new[1:])
    if ts_ms is not None:
        new[1:] |= (ts_ms[1:] - ts_ms[:-1]) > session_gap_ms
    basket = np.cumsum(new) - 1
    basket_user = user[new]
    # Entries: events by (basket, artist), ties in event order. The key is already
    # sorted by basket, so the stable (tim)sort only has short runs to merge.
    key = basket * np.int64(n_artists) + artist
    order = np.argsort(key, kind="stable")
    key = key[order]
    first = np.empty(len(key), dtype=bool)
    first[0] = True
    np.not_equal(key[1:], key[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    if weight is None:
        entry_weight = np.diff(starts, append=len(key)).astype(np.float64)
    else:
        # Summed in event order, as a bincount over the stably sorted events.
        entry_weight = np.bincount(np.cumsum(first) - 1, weights=weight[order])
    entries = key[starts]
    entry_basket = entries // n_artists
    return basket_user, entry_basket, entries - entry_basket * n_artists, entry_weight


def _cap_baskets(
    entry_basket: np.ndarray, entry_artist: np.ndarray, entry_weight: np.ndarray, cap: int
) -> np.ndarray:
    """Which entries survive keeping each basket's ``cap`` most played artists.

    Parameters
    ----------
    entry_basket, entry_artist, entry_weight
        Entries as returned by :func:`_baskets`, shape (n_entries,).
    cap
        Artists kept per basket; ties on plays go to the lower artist row.

    Returns
    -------
    numpy.ndarray
        Boolean, shape (n_entries,). Masking keeps the (basket, artist) order.
    """
    sizes = np.bincount(entry_basket)
    keep = np.ones(len(entry_basket), dtype=bool)
    big = np.flatnonzero(sizes[entry_basket] > cap)
    if len(big) == 0:
        return keep  # the common case: no basket over the cap
    # Only the few baskets over the cap need the three-key sort.
    eb, ea, ew = entry_basket[big], entry_artist[big], entry_weight[big]
    order = np.lexsort((ea, -ew, eb))
    s = eb[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    rank = np.arange(len(s)) - np.repeat(starts, np.diff(np.r_[starts, len(s)]))
    keep[big] = False
    keep[big[order[rank < cap]]] = True
    return keep


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(start, start + size)`` for each pair, shape (sizes.sum(),)."""
    offsets = np.cumsum(sizes) - sizes
    return np.repeat(starts, sizes) + (np.arange(int(sizes.sum())) - np.repeat(offsets, sizes))


def _pair_keys(
    entry_artist: np.ndarray,
    starts: np.ndarray,
    sizes: np.ndarray,
    basket_rank: np.ndarray,
    n_artists: int,
    pair_bits: int,
) -> np.ndarray:
    """Keys ``rank << pair_bits | (a * n_artists + b)`` of all pairs ``a < b`` within each basket.

    Parameters
    ----------
    entry_artist
        Artist of each entry, ascending within a basket, shape (n_entries,).
    starts, sizes
        Offset and size (>= 2) of each basket in the entries, shape (n_baskets,).
    basket_rank
        Small non-negative id of each basket's account, shape (n_baskets,).
    n_artists
        Number of artist rows.
    pair_bits
        Bits of the pair part of a key.

    Returns
    -------
    numpy.ndarray
        Shape (sum of sizes * (sizes - 1) / 2,), int64, basket by basket.
    """
    pos = _ranges(starts, sizes)
    # Entry p of a basket ending at e pairs with the e - p - 1 entries after it.
    partners = np.repeat(starts + sizes, sizes) - pos - 1
    left = (np.repeat(basket_rank, sizes).astype(np.int64) << pair_bits) | (
        entry_artist[pos].astype(np.int64) * n_artists
    )
    key = np.repeat(left, partners)
    # Pair i of entry p (its first pair at f_p) has partner p + 1 + (i - f_p).
    first = np.cumsum(partners) - partners
    right = np.arange(len(key)) - np.repeat(first - pos - 1, partners)
    key += entry_artist[right]
    return key


def _user_chunks(basket_user: np.ndarray, n_pairs: np.ndarray, budget: int) -> np.ndarray:
    """Basket bounds of chunks of whole users, each of about ``budget`` pairs.

    Parameters
    ----------
    basket_user
        Account of each basket, grouped, shape (n_baskets,).
    n_pairs
        Pairs of each basket, shape (n_baskets,).
    budget
        Pairs per chunk; a single account above it makes a chunk of its own.

    Returns
    -------
    numpy.ndarray
        ``[0, ..., n_baskets]``: chunk ``i`` is baskets ``bounds[i]:bounds[i + 1]``.
    """
    n = len(basket_user)
    user_starts = np.flatnonzero(np.r_[True, basket_user[1:] != basket_user[:-1]])
    before = np.cumsum(n_pairs)[user_starts] - n_pairs[user_starts]  # pairs before each user
    # Cut at the first user start at or past each multiple of the budget.
    targets = np.arange(budget, int(before[-1]) + 1, budget) if len(before) else []
    cuts = user_starts[np.minimum(np.searchsorted(before, targets), len(user_starts) - 1)]
    return np.unique(np.r_[0, cuts, n])


def _account_pairs(
    basket_user: np.ndarray,
    entry_basket: np.ndarray,
    entry_artist: np.ndarray,
    n_artists: int,
    pair_dtype: type,
) -> list[np.ndarray]:
    """Pair keys ``a * n_artists + b`` co-listened by each account, once per account.

    Parameters
    ----------
    basket_user
        Account of each basket, grouped, shape (n_baskets,).
    entry_basket, entry_artist
        Entries (after the cap) in (basket, artist) order, shape (n_entries,).
    n_artists
        Number of artist rows.
    pair_dtype
        Integer type of the returned keys (int32 when ``n_artists ** 2`` fits).

    Returns
    -------
    list of numpy.ndarray
        One array per chunk of accounts; over all arrays each (account, pair)
        occurs once.
    """
    sizes = np.bincount(entry_basket, minlength=len(basket_user))
    starts = np.cumsum(sizes) - sizes
    n_pairs = sizes * (sizes - 1) // 2
    pair_bits = int(n_artists * n_artists - 1).bit_length()
    pair_mask = np.int64((1 << pair_bits) - 1)
    bounds = _user_chunks(basket_user, n_pairs, CHUNK_PAIRS)
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        has = sizes[lo:hi] > 1
        if not has.any():
            continue
        users = basket_user[lo:hi][has]
        # Account rank within the chunk, above the pair bits: one int64 key to sort.
        rank = np.cumsum(np.r_[False, users[1:] != users[:-1]])
        if int(rank[-1]).bit_length() + pair_bits > 63:
            raise ValueError("co_listening: too many artists for 63-bit pair keys")
        key = _pair_keys(
            entry_artist, starts[lo:hi][has], sizes[lo:hi][has], rank, n_artists, pair_bits
        )
        key.sort()
        distinct = np.empty(len(key), dtype=bool)
        distinct[0] = True
        np.not_equal(key[1:], key[:-1], out=distinct[1:])  # one count per (account, pair)
        out.append((key[distinct] & pair_mask).astype(pair_dtype))
    return out


def _count(
    keys: list[np.ndarray], counts: list[np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Merge pair keys into sorted distinct keys with summed counts.

    Parameters
    ----------
    keys
        Pair keys, one array per part.
    counts
        Count of each key of the matching part, or ``None``: 1 each.

    Returns
    -------
    keys, counts : ndarray, shape (n_distinct,)
        Sorted distinct keys and their summed counts (int64).
    """
    k = np.concatenate(keys)
    if all(c is None for c in counts):
        k.sort()  # counts are run lengths: no permutation needed
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        return k[starts], np.diff(starts, append=len(k)).astype(np.int64)
    c = np.concatenate(
        [np.ones(len(x), np.int64) if y is None else y for x, y in zip(keys, counts, strict=True)]
    )
    order = np.argsort(k)  # ties are equal keys: no stable sort needed
    k = k[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    return k[starts], np.add.reduceat(c[order], starts).astype(np.int64)


class _PairCounter:
    """Distinct accounts per pair key, accumulated chunk by chunk.

    Keys are held per partition of the key range (by first artist), so that
    merging and the final count sort small arrays, one partition at a time.

    Parameters
    ----------
    n_keys
        Upper bound (exclusive) of the pair keys.
    partitions
        Number of key ranges.
    """

    def __init__(self, n_keys: int, partitions: int) -> None:
        self.bounds = np.linspace(0, n_keys, partitions + 1).astype(np.int64)[1:-1]
        self.keys: list[list[np.ndarray]] = [[] for _ in range(partitions)]
        self.counts: list[list[np.ndarray | None]] = [[] for _ in range(partitions)]
        self.pending = np.zeros(partitions, dtype=np.int64)

    def add(self, keys: np.ndarray) -> None:
        """Add pair keys, one per distinct (account, pair), shape (n,)."""
        keys = np.sort(keys)
        cuts = np.r_[0, np.searchsorted(keys, self.bounds), len(keys)]
        for p in np.flatnonzero(np.diff(cuts)):
            self.keys[p].append(keys[cuts[p] : cuts[p + 1]])
            self.counts[p].append(None)  # one account per key
            self.pending[p] += cuts[p + 1] - cuts[p]
            if self.pending[p] > MERGE_FACTOR * CHUNK_PAIRS and len(self.keys[p]) > 1:
                k, c = _count(self.keys[p], self.counts[p])
                self.keys[p], self.counts[p], self.pending[p] = [k], [c], len(k)

    def result(self, min_shared: int) -> tuple[np.ndarray, np.ndarray]:
        """Sorted distinct keys with at least ``min_shared`` accounts, and their counts."""
        out_k, out_c = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for p in range(len(self.keys)):
            if self.keys[p]:
                k, c = _count(self.keys[p], self.counts[p])
                keep = c >= min_shared
                out_k.append(k[keep].astype(np.int64))
                out_c.append(c[keep])
            self.keys[p], self.counts[p] = [], []
        return np.concatenate(out_k), np.concatenate(out_c)


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
        Pairs sorted by ``(a, b)``.

    Raises
    ------
    ValueError
        Negative account rows, or artist rows outside ``[0, n_artists)``.
    """
    t0 = time.perf_counter()
    user = np.asarray(user, dtype=np.int64)
    artist = np.asarray(artist, dtype=np.int64)
    w = None if weight is None else np.asarray(weight, dtype=np.float64)
    ts = None if ts_ms is None else np.asarray(ts_ms, dtype=np.int64)
    listeners = np.zeros(n_artists, dtype=np.int64)
    if len(user) == 0:
        z = np.zeros(0, np.int64)
        return CoListening(z, z, z, listeners, 0)
    if user.min() < 0 or artist.min() < 0 or artist.max() >= n_artists:
        raise ValueError("co_listening: account and artist rows must lie in range")

    n_users = int(user.max()) + 1
    order = _time_order(user, ts, n_users)
    # Chunks of whole accounts: cut at the first account end past each multiple.
    user_end = np.cumsum(np.bincount(user, minlength=n_users))
    targets = np.arange(CHUNK_EVENTS, len(user), CHUNK_EVENTS)
    bounds = np.unique(np.r_[0, user_end[np.searchsorted(user_end, targets)], len(user)])
    # Pair keys a * n + b, int32 when they fit: half the memory, faster sorts.
    nn = n_artists * n_artists
    pair_dtype = np.int32 if nn - 1 <= np.iinfo(np.int32).max else np.int64
    n_baskets = 0
    counter = _PairCounter(nn, PARTITIONS)
    t_pairs = 0.0
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        idx = order[lo:hi]
        basket_user, eb, ea, ew = _baskets(
            user[idx],
            artist[idx],
            None if ts is None else ts[idx],
            None if w is None else w[idx],
            n_artists,
            session_gap_ms,
        )
        n_baskets += len(basket_user)
        # Distinct listeners: distinct (account, artist) entries of all events.
        rank = np.cumsum(np.r_[False, basket_user[1:] != basket_user[:-1]])
        ua = unique(rank[eb] * np.int64(n_artists) + ea)
        listeners += np.bincount(ua % n_artists, minlength=n_artists)
        keep = _cap_baskets(eb, ea, ew, max_basket_artists)
        t1 = time.perf_counter()
        parts = _account_pairs(
            basket_user, eb[keep], ea[keep].astype(pair_dtype), n_artists, pair_dtype
        )
        if parts:
            counter.add(np.concatenate(parts))
        t_pairs += time.perf_counter() - t1
    t1 = time.perf_counter()
    pk, pc = counter.result(min_shared)
    logger.info(
        "co-listening: %d baskets, %d artist pairs with >= %d shared accounts in %.2fs "
        "(pairs %.2fs, final count %.2fs, %d chunks)",
        n_baskets,
        len(pk),
        min_shared,
        time.perf_counter() - t0,
        t_pairs,
        time.perf_counter() - t1,
        len(bounds) - 1,
    )
    return CoListening(pk // n_artists, pk % n_artists, pc, listeners, n_baskets)
