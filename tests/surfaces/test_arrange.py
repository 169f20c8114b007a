"""Candidate arrangement: best entry per track, per-artist cap, artists interleaved."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.surfaces.arrange import Candidates, interleave
from recsys.surfaces.recommend import Reason

A, B = Reason("a", "first"), Reason("b", "second")


def test_a_track_keeps_its_best_entry_and_the_cap_holds() -> None:
    track_artist = np.array([0, 0, 0, 0, 1, 1, 2])
    c = Candidates()
    c.add([0, 1, 2, 3], [0.9, 0.8, 0.7, 0.6], A)
    c.add([1, 4, 5, 6], [0.95, 0.5, 0.4, 0.3], B)
    out = c.arrange(10, track_artist, max_per_artist=2)
    rows = [r for r, _, _ in out]
    assert len(rows) == len(set(rows))
    assert Counter(track_artist[rows].tolist())[0] == 2
    best = {r: (s, why) for r, s, why in out}
    assert best[1] == (0.95, B)
    artists = track_artist[rows]
    assert not np.any(artists[1:] == artists[:-1])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 4), max_size=30), st.integers(1, 30))
def test_interleave_avoids_repeats_whenever_possible(artists: list[int], size: int) -> None:
    arr = np.array(artists, dtype=np.int64)
    out = interleave(arr, size)
    m = min(size, len(artists))
    assert len(out) == m and len(set(out)) == m
    seq = arr[out]
    counts = Counter(artists)
    # Some choice of m candidates has no repeat iff every artist fits in (m + 1) // 2 slots.
    possible = sum(min(c, (m + 1) // 2) for c in counts.values()) >= m
    if possible:
        assert not np.any(seq[1:] == seq[:-1])
    if len(set(artists)) == 1:
        assert out == list(range(m))  # nothing to interleave: score order
