"""Promotion campaigns: groups of accounts that play the same set of tracks in lockstep.

A campaign buying plays for a few target tracks runs them through a group of
accounts that all play *every* target, whatever else each account plays to
look human (random tracks, the charts, a shared playlist). The targets then
have three properties that genuine listening does not produce together:

1. **a core**: a set ``S`` of tracks by at least ``campaign_min_artists``
   different artists that a group ``G`` of at least ``campaign_min_accounts``
   accounts all play;
2. **dominance**: ``G`` is at least ``campaign_min_share`` of every core
   track's listeners (the group *is* a large part of the tracks' audience);
3. **lockstep**: of the accounts that play at least two tracks of ``S``, at
   least ``campaign_min_lockstep`` play all of them. Taste is graded: fans of
   a style or of the charts play varied subsets of its tracks (on Last.fm
   HetRec and on the synthetic platforms, at most 55 % of those playing two
   tracks of a genuine 4-artist core play all four). A campaign is all or nothing:
   its accounts play every target, genuine listeners of a target usually
   none of the others.

Nothing here reads popularity directly, so the rule does not care whether the
accounts pad their profiles with obscure or with chart tracks; and it needs
no time, so it runs on aggregated ``plays`` as on ``streams``.

Search, without any track x track or account x account matrix:

* candidate pairs of tracks (each with at least ``campaign_min_accounts``
  listeners) come from MinHash LSH over the tracks' *listener* sets
  (``campaign_bands`` bands of ``campaign_rows`` hashes: a pair whose common
  listeners are a share ``d`` of both audiences has Jaccard at least
  ``d / (2 - d)``); a pair is *linked* when its common listeners (counted
  exactly, 64 tracks at a time as bits over the accounts) are at least
  ``campaign_min_accounts`` and ``campaign_min_share`` of each track's
  listeners;
* a linked pair can start a core only if enough third tracks are linked to
  both with common listeners in the range lockstep allows (a triangle query
  on the linked-pair graph; most pairs of genuine listening fail it);
* from each such pair (most dominated first), a core grows greedily: the
  group is the accounts playing every track of the core, and the track the
  largest part of the group plays is added, as long as at least
  ``1 - campaign_max_loss`` of the group plays it and the group stays
  dominant;
* the candidate cores are every prefix of the growth and the grown core less
  any one track; the best one by the rule's ratio (the smallest of the
  conditions' value / threshold) is the core, a campaign when the ratio
  reaches 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys.fraud.farms import band_keys, minhash
from recsys.fraud.settings import FraudSettings

logger = logging.getLogger(__name__)

#: Buckets up to this size are paired exhaustively, larger ones around their first member.
_SMALL_BUCKET = 8


@dataclass
class CampaignGroups:
    """Campaign membership of every account.

    Attributes
    ----------
    group
        Int64, shape (n_users,): campaign id (0..n_campaigns-1), -1 for none.
        An account in several campaigns keeps the first one found.
    ratio
        Float64, shape (n_users,): how close the best core the account is in
        came to meeting every condition (the smallest of size / min accounts,
        artists / min artists, dominance / min share, lockstep / min
        lockstep); at least 1 exactly for members, 0 for accounts in no core.
    size, tracks, artists, share, lockstep
        Per account, the figures of that best core: accounts in the group,
        tracks and distinct artists in the core, the group's smallest share of
        a core track's listeners, and the lockstep ratio (0 where none).
    cores
        One ``(track rows, account rows)`` pair per campaign, in id order.
    n_pairs
        Candidate track pairs (sharing a MinHash bucket).
    n_linked
        Pairs linked (common listeners numerous and dominant enough).
    n_grown
        Cores grown from linked pairs.
    """

    group: np.ndarray
    ratio: np.ndarray
    size: np.ndarray
    tracks: np.ndarray
    artists: np.ndarray
    share: np.ndarray
    lockstep: np.ndarray
    cores: list[tuple[np.ndarray, np.ndarray]]
    n_pairs: int
    n_linked: int
    n_grown: int

    @property
    def n_campaigns(self) -> int:
        return len(self.cores)


def _bucket_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of positions with equal keys: all pairs within small buckets, a star otherwise.

    Parameters
    ----------
    keys
        Uint64, shape (n,): one bucket key per item.

    Returns
    -------
    tuple of np.ndarray
        ``(a, b)``, int64 positions into ``keys`` (a pair may come twice).
    """
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    a_parts, b_parts = [], []
    # Neighbours in sorted order up to _SMALL_BUCKET - 1 apart: every pair of a
    # small bucket, and the near neighbours inside a large one.
    for d in range(1, _SMALL_BUCKET):
        same = np.flatnonzero(k[d:] == k[:-d]) if len(k) > d else np.zeros(0, np.int64)
        a_parts.append(order[same])
        b_parts.append(order[same + d])
    # And every member of a bucket with its first member, so large buckets stay connected.
    new = np.r_[True, k[1:] != k[:-1]] if len(k) else np.zeros(0, bool)
    leader = order[np.maximum.accumulate(np.where(new, np.arange(len(k)), 0))]
    a_parts.append(order[~new])
    b_parts.append(leader[~new])
    return np.concatenate(a_parts), np.concatenate(b_parts)


def _linked_pairs(
    by_track: sp.csr_matrix, listeners: np.ndarray, settings: FraudSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Linked track pairs ``(a, b, common listeners)``, most dominated first, and candidates.

    Candidates share a MinHash bucket in some band; a candidate is linked when
    its exact common listeners are at least ``campaign_min_accounts`` and at
    least ``campaign_min_share`` of each track's listeners.
    """
    s = settings
    cand = np.flatnonzero(listeners >= s.campaign_min_accounts)
    empty = np.zeros(0, np.int64)
    if len(cand) < 2:
        return empty, empty, empty, 0
    sub = by_track[cand]
    sig = minhash(
        sub.indptr, sub.indices, by_track.shape[1], s.campaign_bands * s.campaign_rows, s.seed + 1
    )
    a_parts, b_parts = [], []
    for key in band_keys(sig, s.campaign_bands, s.campaign_rows):
        x, y = _bucket_pairs(key)
        a_parts.append(x)
        b_parts.append(y)
    a, b = np.concatenate(a_parts), np.concatenate(b_parts)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pair = np.unique(lo.astype(np.int64) * len(cand) + hi)
    a, b = cand[pair // len(cand)], cand[pair % len(cand)]
    big = np.maximum(listeners[a], listeners[b])
    # The common listeners are at most the smaller audience: skip pairs whose
    # smaller audience is too small a share of the larger one.
    possible = np.minimum(listeners[a], listeners[b]) >= s.campaign_min_share * big
    a, b, big = a[possible], b[possible], big[possible]
    common = _common(by_track, a, b)
    ok = (common >= s.campaign_min_accounts) & (common >= s.campaign_min_share * big)
    order = np.argsort(-(common / big)[ok], kind="stable")
    return a[ok][order], b[ok][order], common[ok][order], len(pair)


def _can_grow(
    a: np.ndarray,
    b: np.ndarray,
    common: np.ndarray,
    n_tracks: int,
    keep: float,
    most: float,
    need: int,
) -> np.ndarray:
    """Which linked pairs can be part of a core: ``need`` third tracks in lockstep range.

    In a core with group ``G`` and lockstep ``L`` (at least
    ``campaign_min_lockstep``), every pair ``(i, j)`` of core tracks has
    ``|G| <= common(i, j) <= |G| / L``: its common listeners play all of the
    core or count among those playing two or more of it. So for any two
    pairs of the core, ``common(i, t)`` lies within ``[L, 1 / L]`` times
    ``common(i, j)``, and a core of ``campaign_min_artists`` tracks gives
    every pair that many minus two such thirds ``t``. Checked over the linked
    pairs alone (a triangle query on sparse matrices, ``keep`` and ``most``
    the two factors), this skips the many pairs of genuine listening, where
    some tracks of a style are shared far more than others, that cannot
    belong to a core.

    Returns
    -------
    np.ndarray
        Bool, shape (n_pairs,).
    """
    if len(a) == 0:
        return np.zeros(0, bool)
    w = sp.coo_matrix(
        (np.r_[common, common].astype(np.float64), (np.r_[a, b], np.r_[b, a])),
        shape=(n_tracks, n_tracks),
    ).tocsr()
    adj = w.copy()
    adj.data[:] = 1.0
    third = adj[a].multiply(adj[b]).tocsr()  # (pair, t): t linked to both
    if third.nnz == 0:
        return np.zeros(len(a), bool)
    third.data[:] = 1.0
    via_a = w[a].multiply(third).tocsr()  # common listeners of (i, t), on third's pattern
    via_b = w[b].multiply(third).tocsr()
    via_a.sort_indices()
    via_b.sort_indices()
    weakest = np.minimum(via_a.data, via_b.data)
    strongest = np.maximum(via_a.data, via_b.data)
    row = np.repeat(np.arange(len(a)), np.diff(via_a.indptr))
    ok = (weakest >= keep * common[row]) & (strongest <= most * common[row])
    return np.bincount(row[ok], minlength=len(a)) >= max(1, need)


def _grow(
    by_track: sp.csr_matrix,
    listeners: np.ndarray,
    neighbours: sp.csr_matrix,
    seed: tuple[int, int],
    settings: FraudSettings,
    in_group: np.ndarray,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grow a core from a linked pair.

    Candidates are the tracks linked to a track of the core (``neighbours``:
    the linked-pair graph, CSR): a track most of the group plays shares most
    of its listeners with every core track, so it is linked to them unless
    LSH missed every one of those pairs.

    Parameters
    ----------
    in_group
        Bool scratch array, shape (n_accounts,), all False; left all False.

    Returns
    -------
    list of (np.ndarray, np.ndarray)
        After each step (the pair first): the core's track rows and the
        group (account rows playing every one of them); empty when the pair
        has too few common listeners.
    """
    s = settings
    indptr, indices = by_track.indptr, by_track.indices
    i, j = seed
    group = np.intersect1d(
        indices[indptr[i] : indptr[i + 1]], indices[indptr[j] : indptr[j + 1]], assume_unique=True
    )
    if len(group) < s.campaign_min_accounts:
        return []
    core = [i, j]
    steps = [(np.asarray(core, np.int64), group)]
    while len(group) >= s.campaign_min_accounts:
        cand = np.unique(
            np.concatenate(
                [neighbours.indices[neighbours.indptr[t] : neighbours.indptr[t + 1]] for t in core]
            )
        )
        cand = cand[np.all(cand[:, None] != np.asarray(core)[None, :], axis=1)]
        if len(cand) == 0:
            break
        # How many of the group play each candidate, in one pass over their listeners.
        lengths = listeners[cand]
        in_group[group] = True
        hits = in_group[indices[_concat_ranges(indptr[cand], lengths)]]
        in_group[group] = False
        starts = np.cumsum(lengths) - lengths
        held = np.add.reduceat(hits, starts)  # candidates have listeners: no empty run
        ok = (
            (held >= (1.0 - s.campaign_max_loss) * len(group))
            & (held >= s.campaign_min_share * lengths)
            & (held >= s.campaign_min_accounts)
        )
        if not ok.any():
            break
        # The track most of the group plays; ties go to the most dominated one.
        cand, held = cand[ok], held[ok]
        t = int(cand[np.lexsort((-held / listeners[cand], -held))[0]])
        group = np.intersect1d(group, indices[indptr[t] : indptr[t + 1]], assume_unique=True)
        core.append(t)
        steps.append((np.asarray(core, np.int64), group))
    return steps


def _common(by_track: sp.csr_matrix, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact common listeners of track pairs, shape (n_pairs,) int64.

    ``by_track`` is binary tracks x accounts (CSR). Pairs are grouped by
    their larger-audience track; 64 such tracks at a time mark their
    listeners, one bit each, in a uint64 array over accounts, and the
    listeners of the pairs' smaller tracks are looked up in it: linear in the
    audiences, one vectorised pass per 64 tracks.
    """
    out = np.zeros(len(a), np.int64)
    if len(a) == 0:
        return out
    indptr, indices = by_track.indptr, by_track.indices
    n = np.diff(indptr)
    swap = n[a] < n[b]
    big, small = np.where(swap, b, a), np.where(swap, a, b)
    order = np.argsort(big, kind="stable")
    big, small = big[order], small[order]
    tracks, slot = np.unique(big, return_inverse=True)
    bit = (slot % 64).astype(np.uint64)
    batch = slot // 64
    bounds = np.searchsorted(batch, np.arange(batch[-1] + 2))
    mark = np.zeros(by_track.shape[1], np.uint64)
    for k in range(len(bounds) - 1):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        marking = tracks[k * 64 : (k + 1) * 64]
        lengths = n[marking]
        owners = indices[_concat_ranges(indptr[marking], lengths)]
        bits = np.repeat(
            np.left_shift(np.uint64(1), np.arange(len(marking), dtype=np.uint64)), lengths
        )
        np.bitwise_or.at(mark, owners, bits)
        ys = small[lo:hi]
        lengths = n[ys]
        looked = mark[indices[_concat_ranges(indptr[ys], lengths)]]
        hit = np.right_shift(looked, np.repeat(bit[lo:hi], lengths)) & np.uint64(1)
        out[order[lo:hi]] = np.add.reduceat(hit.astype(np.int64), np.cumsum(lengths) - lengths)
        mark[owners] = 0
    return out


def _concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths)])``, vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    before = np.cumsum(lengths) - lengths
    shift = np.repeat(starts - before, lengths)
    return shift + np.arange(total)


def _score(
    core: np.ndarray,
    by_track: sp.csr_matrix,
    listeners: np.ndarray,
    track_artist: np.ndarray,
    settings: FraudSettings,
) -> tuple[float, np.ndarray, np.ndarray, dict[str, float]] | None:
    """The campaign ratio of one candidate core, its group and figures; None below 3 artists.

    The group is every account playing all the core's tracks. The ratio is
    the smallest of size / min accounts, artists / min artists, dominance /
    min share and lockstep / min lockstep: at least 1 exactly when the core
    is a campaign.
    """
    s = settings
    n_artists = len(np.unique(track_artist[core]))
    if n_artists < 3:
        return None
    rows = np.concatenate(
        [by_track.indices[by_track.indptr[t] : by_track.indptr[t + 1]] for t in core]
    )
    accounts, holds = np.unique(rows, return_counts=True)
    members = accounts[holds == len(core)]
    if len(members) == 0:
        return None
    share = float((len(members) / listeners[core]).min())
    lockstep = len(members) / max(1, int((holds >= 2).sum()))
    r = min(
        len(members) / s.campaign_min_accounts,
        n_artists / s.campaign_min_artists,
        share / s.campaign_min_share,
        lockstep / s.campaign_min_lockstep,
    )
    figs = {
        "size": len(members),
        "tracks": len(core),
        "artists": n_artists,
        "share": share,
        "lockstep": lockstep,
    }
    return r, core, members, figs


def find_campaigns(
    counts: sp.csr_matrix, track_artist: np.ndarray, settings: FraudSettings
) -> CampaignGroups:
    """Find promotion campaigns: groups playing a multi-artist set of tracks in lockstep.

    Parameters
    ----------
    counts
        CSR, shape (n_users, n_tracks): streams (or plays) per account and track.
    track_artist
        Artist code of every track, shape (n_tracks,).
    settings
        ``campaign_*`` thresholds and the MinHash seed.

    Returns
    -------
    CampaignGroups
    """
    s = settings
    n_users, n_tracks = counts.shape
    by_account = sp.csr_matrix(
        (np.ones(counts.nnz, np.float32), counts.indices, counts.indptr), shape=counts.shape
    )
    by_account.eliminate_zeros()
    by_track = by_account.T.tocsr()
    by_track.sort_indices()
    listeners = np.diff(by_track.indptr).astype(np.int64)

    group = np.full(n_users, -1, np.int64)
    ratio = np.zeros(n_users)
    figures = {k: np.zeros(n_users) for k in ("size", "tracks", "artists", "share", "lockstep")}
    cores: list[tuple[np.ndarray, np.ndarray]] = []
    a, b, common, n_pairs = _linked_pairs(by_track, listeners, s)
    seeds = _can_grow(
        a,
        b,
        common.astype(np.float64),
        n_tracks,
        keep=s.campaign_min_lockstep,
        most=1.0 / s.campaign_min_lockstep,
        need=s.campaign_min_artists - 2,
    )
    neighbours = sp.coo_matrix(
        (np.ones(2 * len(a), np.int8), (np.r_[a, b], np.r_[b, a])), shape=(n_tracks, n_tracks)
    ).tocsr()
    tried = np.zeros(n_tracks, bool)
    in_group = np.zeros(n_users, bool)
    n_grown = 0
    for i, j in zip(a[seeds].tolist(), b[seeds].tolist(), strict=True):
        if tried[i] and tried[j]:
            continue  # both already in a grown core: this pair would grow the same one
        steps = _grow(by_track, listeners, neighbours, (i, j), s, in_group)
        if not steps:
            continue
        core = steps[-1][0]
        tried[core] = True
        n_grown += 1
        best = None
        # Candidate cores: every prefix of the growth (a campaign's targets
        # come first, since all its accounts play them; tracks it merely pads
        # with, a shared playlist of chart tracks, may follow and would thin
        # the group out), and the grown core less any one track (a genuine
        # listener or two who happen to play two of the targets weigh on
        # lockstep; dropping the track they share can lift it). The
        # best-scoring candidate is the core.
        candidates: list[tuple[np.ndarray, float]] = []
        for prefix, held_by in steps:
            n_artists = len(np.unique(track_artist[prefix]))
            if n_artists >= 3:
                # Every term but lockstep is known from the growth: a bound on the ratio.
                bound = min(
                    len(held_by) / s.campaign_min_accounts,
                    n_artists / s.campaign_min_artists,
                    float((len(held_by) / listeners[prefix]).min()) / s.campaign_min_share,
                )
                candidates.append((prefix, bound))
        if len(core) > s.campaign_min_artists:
            candidates += [(np.delete(core, k), np.inf) for k in range(len(core))]
        for cand, bound in candidates:
            if best is not None and bound < best[0]:
                continue  # cannot beat the best candidate so far
            scored = _score(cand, by_track, listeners, track_artist, s)
            if scored is not None and (best is None or scored[0] >= best[0]):
                best = scored
        if best is None:
            continue  # not even a near miss: nothing to report
        r, core, members, figs = best
        better = r > ratio[members]
        upd = members[better]
        ratio[upd] = r
        for k, v in figs.items():
            figures[k][upd] = v
        fresh = members[group[members] < 0]
        if r >= 1.0 and len(fresh):  # a core found again from another pair adds nothing
            group[fresh] = len(cores)
            cores.append((core, members))
    logger.info(
        "campaigns: %d candidate track pairs, %d linked, %d cores grown, %d campaigns of %d accounts",
        n_pairs,
        len(a),
        n_grown,
        len(cores),
        int((group >= 0).sum()),
    )
    return CampaignGroups(
        group=group,
        ratio=ratio,
        size=figures["size"].astype(np.int64),
        tracks=figures["tracks"].astype(np.int64),
        artists=figures["artists"].astype(np.int64),
        share=figures["share"],
        lockstep=figures["lockstep"],
        cores=cores,
        n_pairs=n_pairs,
        n_linked=len(a),
        n_grown=n_grown,
    )
