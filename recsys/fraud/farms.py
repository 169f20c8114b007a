"""Stream farms: groups of accounts whose track sets are near-identical.

Comparing every pair of accounts is quadratic, so candidates are found with
MinHash and LSH banding: each account's track set is summarised by
``bands * rows`` minimum hash values, and two accounts become a candidate
pair when all ``rows`` values of one band agree (probability
``1 - (1 - J**rows)**bands`` for Jaccard similarity ``J``). Each bucket is
checked against its first member only (a star, linear in the bucket size),
with the exact Jaccard of the two sets; accepted pairs are joined into
connected components, and a component of at least ``farm_min_accounts``
accounts is a farm. No dense account x account matrix is ever built.

With ``streams`` a pair must also be *co-active*: the Jaccard similarity of
the two accounts' active hours (UTC hour slots with a stream) must reach
``farm_min_coactivity``. Farm accounts run together; fans of the same small
catalogue share tracks but not their hours (on the synthetic platforms,
pairs of farm accounts score at least 0.5, pairs of genuine listeners at most
0.06). Aggregated ``plays`` have no time, so there the track sets decide
alone, with the stricter ``farm_min_jaccard_plays``; that stricter test also
suffices with ``streams`` (a farm that spreads its accounts over the day is
still a farm when its track sets are near-identical).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from recsys.fraud.settings import FraudSettings

logger = logging.getLogger(__name__)

# Odd 64-bit constants mixing the hash values of one band into one key.
_MIX = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xBF58476D1CE4E5B9)


@dataclass
class FarmGroups:
    """Farm membership of every account.

    Attributes
    ----------
    group
        Int64, shape (n_users,): farm id (0..n_farms-1), -1 for no farm.
    group_size
        Int64, shape (n_users,): accounts in the account's farm, 0 for none.
    best_jaccard
        Float64, shape (n_users,): highest exact Jaccard similarity of the
        account's track set to a compared account's (0 where none was compared).
    best_coactivity
        Float64, shape (n_users,): highest co-activity (Jaccard of active
        hours) with an account whose track set is near-identical; 1.0 for
        every compared account when no time is available.
    n_candidates
        Accounts that were compared at all.
    n_pairs
        Candidate pairs whose exact similarity was computed.
    """

    group: np.ndarray
    group_size: np.ndarray
    best_jaccard: np.ndarray
    best_coactivity: np.ndarray
    n_candidates: int
    n_pairs: int

    @property
    def n_farms(self) -> int:
        return int(self.group.max()) + 1 if len(self.group) and self.group.max() >= 0 else 0


def minhash(indptr: np.ndarray, indices: np.ndarray, n_items: int, k: int, seed: int) -> np.ndarray:
    """MinHash signatures of CSR rows (each row a set of column indices).

    Parameters
    ----------
    indptr, indices
        CSR structure, shape (n_rows + 1,) and (nnz,); every row non-empty.
    n_items
        Number of columns.
    k
        Number of hash functions.
    seed
        Seed of the random permutations.

    Returns
    -------
    np.ndarray
        Int32, shape (n_rows, k): the smallest permuted index of each row's set.
    """
    rng = np.random.default_rng(seed)
    n_rows = len(indptr) - 1
    sig = np.empty((n_rows, k), np.int32)
    if n_rows == 0:
        return sig
    starts = indptr[:-1]
    for j in range(k):  # k passes over nnz, each one vectorised
        perm = rng.permutation(n_items).astype(np.int32)
        sig[:, j] = np.minimum.reduceat(perm[indices], starts)
    return sig


def band_keys(sig: np.ndarray, bands: int, rows: int) -> list[np.ndarray]:
    """One hash key per row and LSH band of MinHash signatures.

    Parameters
    ----------
    sig
        Signatures, shape (n, bands * rows).
    bands, rows
        Banding: ``bands`` bands of ``rows`` hashes each.

    Returns
    -------
    list of ndarray
        ``bands`` arrays of uint64, shape (n,): rows with equal keys in a band
        share that band's bucket.
    """
    keys = []
    with np.errstate(over="ignore"):  # the mixing below wraps around on purpose
        for b in range(bands):
            band = sig[:, b * rows : (b + 1) * rows].astype(np.uint64)
            key = np.zeros(len(sig), np.uint64)
            for j in range(band.shape[1]):
                key = (key ^ band[:, j]) * _MIX
                key ^= key >> np.uint64(31)
                key *= _MIX2
            keys.append(key)
    return keys


def _star_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(member, leader) for every member of a bucket of equal keys but its first."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    new = np.r_[True, k[1:] != k[:-1]]
    leader = order[np.maximum.accumulate(np.where(new, np.arange(len(k)), 0))]
    member = order
    keep = ~new
    return member[keep], leader[keep]


def _row_jaccard(b: sp.csr_matrix, a_rows: np.ndarray, b_rows: np.ndarray) -> np.ndarray:
    """Exact Jaccard similarity of pairs of rows of a binary CSR matrix, shape (n_pairs,)."""
    sizes = np.diff(b.indptr)
    out = np.empty(len(a_rows), np.float64)
    chunk = 200_000  # bounds the memory of the row gathers
    for lo in range(0, len(a_rows), chunk):
        a, c = a_rows[lo : lo + chunk], b_rows[lo : lo + chunk]
        inter = np.asarray(b[a].multiply(b[c]).sum(axis=1)).ravel()
        union = sizes[a] + sizes[c] - inter
        out[lo : lo + chunk] = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return out


def _coactivity(
    cand: np.ndarray,
    a: np.ndarray,
    c: np.ndarray,
    stream_user: np.ndarray,
    stream_hour: np.ndarray,
) -> np.ndarray:
    """Jaccard similarity of the active hour slots of candidate pairs, shape (n_pairs,).

    Only the streams of accounts in a pair are read, so the account x hour
    matrix stays small.
    """
    involved = np.unique(np.r_[a, c])
    local = np.full(len(cand), -1, np.int64)
    local[involved] = np.arange(len(involved))
    owner = np.full(int(cand.max()) + 1 if len(cand) else 0, -1, np.int64)
    owner[cand[involved]] = np.arange(len(involved))
    in_range = stream_user < len(owner)
    row = np.full(len(stream_user), -1, np.int64)
    row[in_range] = owner[stream_user[in_range]]
    keep = row >= 0
    hours = stream_hour[keep]
    h0 = int(hours.min()) if len(hours) else 0
    act = sp.csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (row[keep], hours - h0)),
        shape=(len(involved), int(hours.max()) - h0 + 1 if len(hours) else 1),
    )
    act.sum_duplicates()
    act.data[:] = 1.0
    return _row_jaccard(act, local[a], local[c])


def find_farms(
    counts: sp.csr_matrix,
    settings: FraudSettings,
    stream_user: np.ndarray | None = None,
    stream_hour: np.ndarray | None = None,
) -> FarmGroups:
    """Group accounts with near-identical track sets (and, with time, active together).

    Parameters
    ----------
    counts
        CSR, shape (n_users, n_tracks): streams (or plays) per account and track.
    settings
        ``farm_*`` thresholds and the MinHash seed.
    stream_user, stream_hour
        Account and hour slot (any integer clock in hours, e.g. ns // 3.6e12)
        of every stream, shape (n_streams,); ``None`` when there is no time
        (``plays``), and then co-activity is not required.

    Returns
    -------
    FarmGroups
    """
    s = settings
    n_users, n_tracks = counts.shape
    n_streams = np.asarray(counts.sum(axis=1)).ravel()
    n_tracks_played = np.diff(counts.indptr)
    cand = np.flatnonzero(
        (n_streams >= s.farm_min_streams)
        & (n_tracks_played >= max(1, s.farm_min_tracks))
        & (n_tracks_played <= s.farm_max_tracks)
    )
    group = np.full(n_users, -1, np.int64)
    group_size = np.zeros(n_users, np.int64)
    best = np.zeros(n_users, np.float64)
    best_co = np.zeros(n_users, np.float64)
    if len(cand) < max(2, s.farm_min_accounts):
        return FarmGroups(group, group_size, best, best_co, len(cand), 0)

    sub = counts[cand]
    binary = sp.csr_matrix((np.ones(sub.nnz, np.float32), sub.indices, sub.indptr), shape=sub.shape)
    sig = minhash(binary.indptr, binary.indices, n_tracks, s.farm_bands * s.farm_rows, s.seed)

    members, leaders = [], []
    for key in band_keys(sig, s.farm_bands, s.farm_rows):
        m, ld = _star_pairs(key)
        members.append(m)
        leaders.append(ld)
    a = np.concatenate(members)
    c = np.concatenate(leaders)
    if len(a):
        pair = np.unique(np.minimum(a, c).astype(np.int64) * len(cand) + np.maximum(a, c))
        a, c = pair // len(cand), pair % len(cand)
    jac = _row_jaccard(binary, a, c) if len(a) else np.zeros(0)
    has_time = stream_user is not None and stream_hour is not None
    ok = jac >= (s.farm_min_jaccard if has_time else s.farm_min_jaccard_plays)
    co = np.ones(len(a))
    if has_time and ok.any():
        co[ok] = _coactivity(cand, a[ok], c[ok], stream_user, stream_hour)
        co[~ok] = 0.0
    # Time only adds evidence: a pair close enough to be a farm without time
    # (the stricter plays threshold) is one with time too, whatever its hours.
    ok = (ok & (co >= s.farm_min_coactivity)) | (jac >= s.farm_min_jaccard_plays)
    cand_best = np.zeros(len(cand))
    cand_co = np.zeros(len(cand))
    if len(jac):
        np.maximum.at(cand_best, a, jac)
        np.maximum.at(cand_best, c, jac)
        np.maximum.at(cand_co, a, co)
        np.maximum.at(cand_co, c, co)
    best[cand] = cand_best
    best_co[cand] = cand_co

    graph = sp.coo_matrix(
        (np.ones(int(ok.sum()), np.int8), (a[ok], c[ok])), shape=(len(cand), len(cand))
    )
    _, label = connected_components(graph, directed=False)
    size = np.bincount(label)
    is_farm = size[label] >= s.farm_min_accounts
    # Renumber the farms 0..k-1 in order of their smallest account.
    farm_labels = np.unique(label[is_farm])
    remap = np.full(len(size), -1, np.int64)
    remap[farm_labels] = np.arange(len(farm_labels))
    group[cand] = remap[label]
    group_size[cand] = np.where(is_farm, size[label], 0)
    logger.info(
        "farms: %d candidates, %d pairs checked, %d near-identical (and co-active), "
        "%d farms of %d accounts",
        len(cand),
        len(a),
        int(ok.sum()),
        len(farm_labels),
        int(is_farm.sum()),
    )
    return FarmGroups(group, group_size, best, best_co, len(cand), len(a))
