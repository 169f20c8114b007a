"""Genuine listeners: their tastes, accounts and streams.

The streams are built for all users at once: every play is a row of a few
numpy arrays, grouped by user and ordered in time. Timestamps come from a
closed form of the session recurrence ``t[i] = max(session_start[i],
t[i-1] + ms_played[i-1] + gap[i])`` so that a user's plays never overlap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from recsys.synth import vocab
from recsys.synth._arrays import (
    MS_PER_DAY,
    MS_PER_HOUR,
    grouped_cdf,
    sample_cdf,
    segments,
)
from recsys.synth.catalogue import Catalogue
from recsys.synth.scales import Scale

logger = logging.getLogger(__name__)

#: The platform opened on 2012-01-01, this many days before the window end
#: (2026-11-01); the oldest accounts date from then.
PLATFORM_AGE_DAYS = 5418
#: Listening by hour of day (UTC): quiet nights, commute, evening peak.
HOUR_WEIGHTS = np.array(
    [2, 1.2, 0.8, 0.5, 0.4, 0.5, 1.2, 3, 4, 3.5, 3, 3.2, 3.5, 3.3, 3.2, 3.4, 3.8, 4.5, 5, 5.5, 5.8]
    + [5.5, 4.5, 3],
    dtype=np.float64,
)
#: Chance that a play comes from outside the user's styles (radio, friends).
EXPLORE_P = 0.03
#: Most plays a user makes per active day (heavy users are capped here).
MAX_PLAYS_PER_DAY = 45
#: Gap before a new session when the previous one ran late.
MIN_SESSION_GAP_MS = 1_000


@dataclass
class GenuineUsers:
    """Latent tastes and accounts of the genuine listeners."""

    styles: np.ndarray  # (n, 3) style indices, -1 where unused; main style first
    weights: np.ndarray  # (n, 3) mixture weights, 0 where unused
    created_ms: np.ndarray  # account creation, ms relative to the window start
    consent: np.ndarray
    n_plays: np.ndarray  # planned plays in the window

    def __len__(self) -> int:
        return len(self.created_ms)


@dataclass
class Plays:
    """Plays as parallel arrays (user and track are internal indices)."""

    user: np.ndarray  # int32
    track: np.ndarray  # int32
    t_ms: np.ndarray  # int64, ms relative to the window start
    ms_played: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.user)


def build_users(rng: np.random.Generator, scale: Scale, cat: Catalogue) -> GenuineUsers:
    """Draw the genuine users: style mixtures, account age, consent and activity.

    Parameters
    ----------
    rng
        The platform's random generator.
    scale
        Sizes (``n_users``, ``n_streams``, ``window_days``).
    cat
        The catalogue (for the number of styles).

    Returns
    -------
    GenuineUsers
    """
    n, S, W = scale.n_users, cat.n_styles, scale.window_days
    style_w = np.array([s.weight for s in vocab.STYLES])
    style_w /= style_w.sum()
    rel = vocab.related_matrix()
    rel_count = rel.sum(axis=1)
    rel_list = np.argsort(~rel, axis=1, kind="stable")

    # Tastes: one to three styles; the 2nd/3rd is usually related to the 1st.
    k = rng.choice([1, 2, 3], size=n, p=[0.35, 0.4, 0.25])
    styles = np.full((n, 3), -1, np.int64)
    styles[:, 0] = rng.choice(S, size=n, p=style_w)
    for j in (1, 2):
        base = styles[:, 0]
        if j == 2:
            base = np.where((rng.random(n) < 0.5) & (styles[:, 1] >= 0), styles[:, 1], base)
        related = rel_list[base, (rng.random(n) * rel_count[base]).astype(np.int64)]
        cand = np.where(rng.random(n) < 0.65, related, rng.choice(S, size=n, p=style_w))
        for _ in range(3):  # make the styles distinct
            dup = np.any(cand[:, None] == styles[:, :j], axis=1)
            cand[dup] = (cand[dup] + 1 + rng.integers(0, S - 1, int(dup.sum()))) % S
        dup = np.any(cand[:, None] == styles[:, :j], axis=1)
        styles[:, j] = np.where((k > j) & ~dup, cand, -1)
    # Used slots first, then weights in decreasing order: the main style is slot 0.
    styles = np.take_along_axis(styles, np.argsort(styles < 0, axis=1, kind="stable"), axis=1)
    raw = rng.gamma(2.0, 1.0, (n, 3)) * (styles >= 0)
    weights = -np.sort(-raw, axis=1)
    weights /= weights.sum(axis=1, keepdims=True)

    # Accounts: the platform grew, so recent sign-ups are more common.
    days_ago = PLATFORM_AGE_DAYS * rng.random(n) ** 1.6
    created = ((W - days_ago) * MS_PER_DAY).astype(np.int64)
    created = np.minimum(created, (W - 2) * MS_PER_DAY)  # at least a day to listen
    consent = rng.random(n) >= 0.1

    # Activity: heavy-tailed; a few users do not listen at all in the window.
    active_frac = (W * MS_PER_DAY - np.maximum(created, 0)) / (W * MS_PER_DAY)
    x = rng.lognormal(0.0, 1.25, n) * active_frac
    x[rng.random(n) < 0.02] = 0.0
    x *= scale.n_streams / x.sum()
    cap = MAX_PLAYS_PER_DAY * W * active_frac
    n_plays = np.floor(np.minimum(x, cap) + rng.random(n)).astype(np.int64)
    return GenuineUsers(styles, weights, created, consent, n_plays)


def genuine_streams(
    rng: np.random.Generator, scale: Scale, cat: Catalogue, users: GenuineUsers
) -> tuple[Plays, dict[str, int]]:
    """Streams of the genuine users over the window.

    Parameters
    ----------
    rng
        The platform's random generator.
    scale
        Sizes.
    cat
        The catalogue.
    users
        The genuine users (their index is their internal user index).

    Returns
    -------
    Plays
        The plays, grouped by user, in time order within a user.
    dict
        Diagnostics (counts of plays dropped and why).
    """
    W = scale.window_days
    now_ms = W * MS_PER_DAY - 1_000
    n_users = len(users)
    N = int(users.n_plays.sum())
    uid, pos, ustart = segments(users.n_plays)
    uid = uid.astype(np.int32)
    first = pos == 0

    # ---- sessions: a geometric number of plays, a start time each -----------
    mean_len = np.clip(rng.lognormal(np.log(9.0), 0.5, n_users), 2.0, 40.0)
    flag = first | (rng.random(N) < 1.0 / mean_len[uid])
    sess_first = np.flatnonzero(flag)
    sess_user = uid[sess_first]
    sess_idx = (np.cumsum(flag) - 1).astype(np.int32)
    del flag
    start_day = np.where(users.created_ms > 0, users.created_ms // MS_PER_DAY + 1, 0)
    n_days = W - start_day
    day = start_day[sess_user] + (rng.random(len(sess_user)) * n_days[sess_user]).astype(np.int64)
    hour = rng.choice(24, size=len(sess_user), p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    t_sess = day * MS_PER_DAY + hour * MS_PER_HOUR + rng.integers(0, MS_PER_HOUR, len(sess_user))
    # Sessions of a user in time order (sess_user is already grouped).
    t_sess = t_sess[np.lexsort((t_sess, sess_user))]
    del day, hour

    # ---- what is played -------------------------------------------------
    cw = np.cumsum(users.weights, axis=1)
    r = rng.random(N)
    slot = (r > cw[uid, 0]).astype(np.int64) + (r > cw[uid, 1])
    style = users.styles[uid, np.minimum(slot, 2)]
    # Rounding can leave r above the last used weight: fall back to the main style.
    style = np.where(style < 0, users.styles[uid, 0], style)
    explore = np.flatnonzero(rng.random(N) < EXPLORE_P)
    style_w = np.array([s.weight for s in vocab.STYLES])
    style[explore] = rng.choice(cat.n_styles, size=len(explore), p=style_w / style_w.sum())
    del r, slot

    by_style = np.argsort(cat.track_style, kind="stable")
    sorted_style = cat.track_style[by_style]
    cdf = grouped_cdf(cat.track_weight[by_style], sorted_style, cat.n_styles)
    track = by_style[sample_cdf(rng, cdf, style, N)]

    # A track cannot be played before its release day: redraw those from the
    # catalogue released before the window.
    release_ms = cat.track_release_day * MS_PER_DAY
    play_sess_t = t_sess[sess_idx]
    early = np.flatnonzero(release_ms[track] > play_sess_t)
    old_w = np.where(cat.track_release_day[by_style] < 0, cat.track_weight[by_style], 0.0)
    old_cdf = grouped_cdf(old_w, sorted_style, cat.n_styles)
    track[early] = by_style[sample_cdf(rng, old_cdf, style[early], len(early))]
    valid = release_ms[track] <= play_sess_t
    del style, play_sess_t, early

    # Favourites: a play often repeats one of the user's earlier plays (a
    # rich-get-richer rotation). Earlier means earlier in time, so the release
    # rule still holds. Chains of repeats resolve by pointer jumping.
    p_rep = 0.65 * rng.beta(2.0, 3.0, n_users)
    rep = ~first & (rng.random(N) < p_rep[uid])
    src = np.arange(N, dtype=np.int64)
    src[rep] = ustart[uid[rep]] + (rng.random(int(rep.sum())) * pos[rep]).astype(np.int64)
    while True:
        nxt = src[src]
        if np.array_equal(nxt, src):
            break
        src = nxt
    track = track[src].astype(np.int32)
    valid = valid[src]
    del src, rep, pos

    # ---- how much of it is played -----------------------------------------
    duration = cat.track_duration_ms[track]
    skip_p = rng.beta(2.0, 8.0, n_users)[uid] * np.where(cat.track_farm[track], 1.6, 1.0)
    skip = rng.random(N) < np.minimum(skip_p, 0.9)
    skip_ms = 1_000 + (rng.beta(1.1, 2.2, N) * 28_999).astype(np.int64)
    part_ms = np.maximum(30_000, (duration * rng.uniform(0.45, 1.0, N)).astype(np.int64))
    full = rng.random(N) < 0.6
    ms = np.where(skip, skip_ms, np.where(full, duration, np.minimum(part_ms, duration)))
    del skip_p, skip, skip_ms, part_ms, full, duration

    # ---- when: t[i] = max(a[i], t[i-1] + b[i]) in closed form -------------
    # With B the per-user running sum of b, t[i] = B[i] + max_{j<=i}(a[j] - B[j]);
    # a[j] is -inf except at session starts, so the running max runs over sessions.
    gap = rng.integers(150, 2_500, N)
    pause = rng.random(N) < 0.06
    gap[pause] = rng.integers(5_000, 600_000, int(pause.sum()))
    gap[sess_first] = MIN_SESSION_GAP_MS
    b = np.empty(N, np.int64)
    b[0:1] = 0
    b[1:] = ms[:-1] + gap[1:]
    b[first] = 0
    del gap, pause
    B = np.cumsum(b)
    del b
    B -= B[ustart[uid]]
    c = t_sess - B[sess_first]
    # Segmented running max: lift each user's values above all earlier users'.
    lift = sess_user.astype(np.int64) << 36
    cm = np.maximum.accumulate(c + lift) - lift
    t = B + cm[sess_idx]
    del B, c, cm, lift

    keep = valid & (t <= now_ms)
    stats = {
        "dropped_before_release": int((~valid).sum()),
        "dropped_after_now": int((t > now_ms).sum()),
    }
    plays = Plays(uid[keep], track[keep], t[keep], ms[keep].astype(np.int64))
    logger.debug("genuine plays: %d kept of %d planned (%s)", len(plays), N, stats)
    return plays, stats
