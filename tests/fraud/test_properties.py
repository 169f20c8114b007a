"""Properties: broad-taste heavy listeners are never flagged; one-track loop bots always are."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.fraud import FraudDetector
from tests.fraud.builders import Platform

H = 3_600_000
DAY = 24 * H
DETECTOR = FraudDetector()


def _listener_plays(
    rng: np.random.Generator,
    n_days: int,
    per_day: int,
    n_tracks: int,
    skew: float,
    duration_ms: int,
    skip_share: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A human's plays: 1-3 sessions a day, never overlapping, Zipf-like taste over the catalogue."""
    weights = 1.0 / np.arange(1, n_tracks + 1) ** skew
    taste = rng.permutation(n_tracks)  # which tracks the listener favours
    tracks, starts, played = [], [], []
    t_end = 0
    for day in range(n_days):
        n_today = max(1, int(rng.poisson(per_day)))
        n_sessions = int(rng.integers(1, 4))
        sizes = np.diff(np.r_[0, np.sort(rng.integers(0, n_today + 1, n_sessions - 1)), n_today])
        hours = np.sort(rng.uniform(7, 23, n_sessions))
        for size, hour in zip(sizes, hours, strict=True):
            t = max(int(day * DAY + hour * H), t_end + 60_000)
            for _ in range(int(size)):
                track = taste[rng.choice(n_tracks, p=weights / weights.sum())]
                r = rng.random()
                if r < skip_share:
                    ms = int(rng.integers(1_000, 30_000))  # a skip: not a stream
                elif r < skip_share + 0.3:
                    ms = int(rng.integers(30_000, duration_ms + 1))
                else:
                    ms = duration_ms
                tracks.append(track)
                starts.append(t)
                played.append(ms)
                t += ms + int(rng.integers(200, 3_000))
            t_end = t
    return np.array(tracks), np.array(starts), np.array(played)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_days=st.integers(5, 60),
    per_day=st.integers(5, 45),
    n_tracks=st.integers(100, 400),
    n_artists=st.integers(20, 60),
    skew=st.floats(0.0, 1.1),
    duration_s=st.integers(90, 400),
    skip_share=st.floats(0.0, 0.4),
    new_account=st.booleans(),
)
def test_heavy_listener_with_broad_taste_is_never_flagged(
    seed: int,
    n_days: int,
    per_day: int,
    n_tracks: int,
    n_artists: int,
    skew: float,
    duration_s: int,
    skip_share: float,
    new_account: bool,
) -> None:
    rng = np.random.default_rng(seed)
    p = Platform(n_tracks=n_tracks, n_artists=n_artists, duration_ms=duration_s * 1000)
    tracks, starts, played = _listener_plays(
        rng, n_days, per_day, n_tracks, skew, duration_s * 1000, skip_share
    )
    created = (
        pd.Timestamp("2026-08-31T00:00Z") if new_account else pd.Timestamp("2019-05-01T00:00Z")
    )
    p.add_user("fan", created)
    p.play("fan", tracks, starts, played)
    result = DETECTOR.detect(p.contract())
    assert result.accounts.empty, result.accounts.to_dict("records")
    assert not result.stream_flagged.any()
    assert result.account_score.max() < 0.5


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_days=st.integers(1, 5),
    per_day=st.integers(50, 1_500),
    duration_s=st.integers(60, 400),
    full_plays=st.booleans(),
    max_gap_ms=st.integers(0, 5_000),
    start_hour=st.floats(0, 20),
    with_short_plays=st.booleans(),
)
def test_bot_looping_one_track_is_always_flagged(
    seed: int,
    n_days: int,
    per_day: int,
    duration_s: int,
    full_plays: bool,
    max_gap_ms: int,
    start_hour: float,
    with_short_plays: bool,
) -> None:
    rng = np.random.default_rng(seed)
    duration = duration_s * 1000
    p = Platform(n_tracks=200, n_artists=40, duration_ms=duration)
    p.add_user("fan")
    p.add_user("bot", pd.Timestamp("2026-08-25T00:00Z"))
    tracks, starts, played = _listener_plays(rng, 20, 20, 200, 0.8, duration, 0.1)
    p.play("fan", tracks, starts, played)
    target = int(rng.integers(0, 200))
    for day in range(n_days):
        ms = (
            np.full(per_day, duration)
            if full_plays
            else rng.integers(30_000, duration + 1, per_day)
        )
        gap = rng.integers(0, max_gap_ms + 1, per_day)
        # A loop runs for hours but fits in a day: as many plays as 20 hours hold.
        fits = int(np.searchsorted(np.cumsum(ms + gap), 20 * H))
        n = max(fits, 1)
        p.back_to_back("bot", np.full(n, target), int(day * DAY + start_hour * H), ms[:n], 0)
        if with_short_plays:
            p.play("bot", [target] * 3, day * DAY + 23 * H + np.arange(3) * 20_000, 10_000)
    data = p.contract()
    result = DETECTOR.detect(data)
    flagged = dict(zip(result.accounts["user_id"], result.accounts["main_reason"], strict=True))
    assert "bot" in flagged and "fan" not in flagged
    users = data.users["user_id"].to_numpy()[data.streams["user_idx"].to_numpy()]
    is_stream = data.streams["ms_played"].to_numpy() >= 30_000
    bot = users == "bot"
    assert result.stream_flagged[bot & is_stream].all()
    assert not result.stream_flagged[bot & ~is_stream].any()  # short plays are not fraud
    assert not result.stream_flagged[~bot].any()
