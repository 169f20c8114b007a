"""Small vectorised helpers shared by the generator modules."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000


def segments(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lay out ``counts[i]`` consecutive elements for every segment ``i``.

    Parameters
    ----------
    counts
        Non-negative integer length of each segment.

    Returns
    -------
    seg
        Segment index of each element (``int64``, length ``counts.sum()``).
    pos
        Position of each element within its segment (0-based).
    starts
        Offset of each segment's first element.
    """
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    seg = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    pos = np.arange(int(counts.sum()), dtype=np.int64) - starts[seg]
    return seg, pos, starts


def id_strings(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """Fixed-width identifiers such as ``u0000042`` for ``numbers``.

    Raises
    ------
    ValueError
        If a number does not fit in ``width`` digits (ids must stay fixed width).
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    if len(numbers) and (numbers.min() < 0 or numbers.max() >= 10**width):
        raise ValueError(f"{prefix} ids do not fit in {width} digits")
    return np.char.add(prefix, np.char.zfill(numbers.astype(str), width))


def join_words(*parts: np.ndarray | str, sep: str = " ") -> np.ndarray:
    """Element-wise ``sep.join(parts)`` of string arrays (or constants)."""
    out = np.asarray(parts[0]).astype(str)
    for p in parts[1:]:
        out = np.char.add(np.char.add(out, sep), np.asarray(p).astype(str))
    return out


def pick(rng: np.random.Generator, words: np.ndarray, n: int) -> np.ndarray:
    """``n`` words drawn uniformly with replacement."""
    return words[rng.integers(0, len(words), n)]


def dict_column(indices: np.ndarray, dictionary: pa.Array) -> pa.DictionaryArray:
    """An id column as integer ``indices`` into ``dictionary`` (no Python strings per row)."""
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32)), dictionary)


def sample_cdf(
    rng: np.random.Generator, cdf: np.ndarray, group: np.ndarray | None, n: int
) -> np.ndarray:
    """Draw positions from concatenated per-group cumulative distributions.

    ``cdf`` holds, for every group ``g`` in turn, the running sum of that group's
    normalised weights shifted by ``g`` (so values of group ``g`` lie in
    ``(g, g + 1]``): one ``searchsorted`` then samples every group at once.

    Parameters
    ----------
    rng
        Random generator.
    cdf
        Concatenated shifted cumulative weights, non-decreasing.
    group
        Group of each draw (``None``: a single group 0).
    n
        Number of draws.

    Returns
    -------
    numpy.ndarray
        Positions into ``cdf`` (``int64``).
    """
    u = rng.random(n)
    if group is not None:
        u += group
    pos = np.searchsorted(cdf, u, side="right")
    return np.minimum(pos, len(cdf) - 1)


def grouped_cdf(weights: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Shifted cumulative weights for :func:`sample_cdf`.

    ``weights`` and ``group`` must already be ordered by group. A group with
    zero total weight gets a flat ramp so that it is never chosen by mistake
    from a neighbouring group (draws into it fall on its last element).
    """
    weights = np.asarray(weights, dtype=np.float64)
    totals = np.bincount(group, weights=weights, minlength=n_groups)
    csum = np.cumsum(weights)
    starts = np.cumsum(totals) - totals
    within = csum - starts[group]
    norm = np.where(totals[group] > 0, totals[group], 1.0)
    cdf = group + within / norm
    # Guard the group ends against rounding so that group + 1.0 lands inside.
    last = np.r_[group[1:] != group[:-1], True]
    cdf[last] = group[last] + 1.0
    return cdf
