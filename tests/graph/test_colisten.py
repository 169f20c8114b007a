"""Co-listening counts: distinct accounts per artist pair, sessions, caps."""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recsys.graph.colisten as colisten
from recsys.graph.colisten import co_listening

GAP = 30 * 60 * 1000


def _brute(user, artist, ts, cap, gap=GAP, weight=None):
    """Reference: sessions by gap, top-``cap`` artists per basket, one count per account."""
    baskets: dict = defaultdict(lambda: defaultdict(float))
    order = np.lexsort((ts, user)) if ts is not None else np.argsort(user, kind="stable")
    sid, prev = 0, None
    for i in order:
        if ts is not None:
            if prev is None or user[i] != user[prev] or ts[i] - ts[prev] > gap:
                sid += 1
            key = (user[i], sid)
        else:
            key = (user[i],)
        baskets[key][artist[i]] += 1 if weight is None else weight[i]
        prev = i
    accounts = defaultdict(set)
    for key, plays in baskets.items():
        top = sorted(plays, key=lambda a: (-plays[a], a))[:cap]
        for a, b in itertools.combinations(sorted(top), 2):
            accounts[(a, b)].add(key[0])
    return {k: len(v) for k, v in accounts.items()}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(0, 300),
    n_users=st.integers(1, 8),
    n_artists=st.integers(2, 12),
    span=st.sampled_from([10**6, 10**8, 10**10]),
    cap=st.integers(2, 6),
    timed=st.booleans(),
    in_time_order=st.booleans(),
    weighted=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_matches_brute_force(
    n, n_users, n_artists, span, cap, timed, in_time_order, weighted, seed, monkeypatch
) -> None:
    rng = np.random.default_rng(seed)
    user = rng.integers(0, n_users, n)
    artist = rng.integers(0, n_artists, n)
    ts = rng.integers(0, span, n) if timed else None
    if timed and in_time_order:  # the usual layout of an event table (a faster path)
        ts = np.sort(ts)
    # Few distinct weights: ties in the cap, and sums whose rounding depends on order.
    weight = rng.choice([0.1, 0.2, 0.7, 1.0], n) if weighted else None
    # Many chunks (of events, of pairs, merges): an account's pairs must still be
    # de-duplicated together, and counts merged across chunks.
    monkeypatch.setattr(colisten, "CHUNK_EVENTS", 7)
    monkeypatch.setattr(colisten, "CHUNK_PAIRS", 5)
    monkeypatch.setattr(colisten, "MERGE_FACTOR", 3)
    got = co_listening(user, artist, n_artists, ts_ms=ts, weight=weight, max_basket_artists=cap)
    assert np.all(got.a < got.b)
    keys = got.a * n_artists + got.b
    assert np.all(np.diff(keys) > 0)  # sorted by (a, b), as build_graph relies on
    assert dict(
        zip(zip(got.a.tolist(), got.b.tolist(), strict=False), got.shared.tolist(), strict=False)
    ) == _brute(user, artist, ts, cap, weight=weight)
    listeners = np.zeros(n_artists, int)
    for a in range(n_artists):
        listeners[a] = len(set(user[artist == a].tolist()))
    assert got.listeners.tolist() == listeners.tolist()


def test_an_account_counts_once_per_pair_however_much_it_streams() -> None:
    # Account 0 plays artists 1 and 2 together in 200 sessions; accounts 1 and 2 once each.
    sessions = 200
    user = np.r_[np.zeros(2 * sessions, int), [1, 1, 2, 2]]
    artist = np.r_[np.tile([1, 2], sessions), [1, 2, 1, 2]]
    ts = np.r_[np.repeat(np.arange(sessions) * 10 * GAP, 2), [0, 1, 0, 1]]
    got = co_listening(user, artist, 3, ts_ms=ts)
    assert got.shared.tolist() == [3]
    assert co_listening(user, artist, 3, ts_ms=ts, min_shared=4).shared.size == 0


def test_sessions_split_on_gaps_and_plays_use_whole_profiles() -> None:
    user = np.array([0, 0, 0])
    artist = np.array([0, 1, 2])
    ts = np.array([0, GAP - 1, 3 * GAP])  # 0 and 1 together; 2 a session of its own
    timed = co_listening(user, artist, 3, ts_ms=ts)
    assert list(zip(timed.a.tolist(), timed.b.tolist(), strict=False)) == [(0, 1)]
    profile = co_listening(user, artist, 3, weight=np.array([5.0, 1.0, 1.0]))
    assert len(profile.a) == 3
    capped = co_listening(user, artist, 3, weight=np.array([5.0, 1.0, 2.0]), max_basket_artists=2)
    assert list(zip(capped.a.tolist(), capped.b.tolist(), strict=False)) == [(0, 2)]


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_inputs(n: int) -> None:
    got = co_listening(np.zeros(n, int), np.zeros(n, int), 4)
    assert got.a.size == 0 and got.listeners.sum() == n


def test_known_counts_on_a_hand_made_table(monkeypatch) -> None:
    # Three accounts, artists 0-3, time-ordered rows (one chunk per account).
    #   account 0: session {0, 1, 2}, then (gap) session {1, 2}  -> (0,1) (0,2) (1,2) once each
    #   account 1: session {0, 1}, then session {3}               -> (0,1)
    #   account 2: session {0, 1, 3}                               -> (0,1) (0,3) (1,3)
    monkeypatch.setattr(colisten, "CHUNK_EVENTS", 2)
    rows = [  # (ts, user, artist)
        (0, 0, 0),
        (1, 1, 0),
        (2, 2, 0),
        (3, 0, 1),
        (4, 1, 1),
        (5, 2, 1),
        (6, 0, 2),
        (7, 2, 3),
        (6 + 2 * GAP, 0, 1),
        (6 + 2 * GAP + 1, 0, 2),
        (6 + 2 * GAP + 2, 1, 3),
        (6 + 2 * GAP + 3, 0, 2),
    ]
    ts, user, artist = (np.array(c) for c in zip(*rows, strict=True))
    got = co_listening(user, artist, 4, ts_ms=ts)
    pairs = list(zip(got.a.tolist(), got.b.tolist(), got.shared.tolist(), strict=True))
    assert pairs == [(0, 1, 3), (0, 2, 1), (0, 3, 1), (1, 2, 1), (1, 3, 1)]
    assert got.listeners.tolist() == [3, 3, 1, 2]
    assert got.baskets == 5
    assert co_listening(user, artist, 4, ts_ms=ts, min_shared=2).shared.tolist() == [3]


def test_rows_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="in range"):
        co_listening(np.array([0, 0]), np.array([0, 4]), 4)
