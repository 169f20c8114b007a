"""Fraudulent accounts and their streams: loop bots, stream farms, bought streams.

Every bot plays in *runs*: back-to-back plays from a run's start time, one run
per account and active day. The kinds differ in what they play, for how long,
and how many accounts act alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from recsys.synth._arrays import MS_PER_DAY, MS_PER_HOUR, segments
from recsys.synth.catalogue import ACTIVE, TRUSTED, VERIFIED, Catalogue
from recsys.synth.listening import Plays
from recsys.synth.scales import Scale

logger = logging.getLogger(__name__)

BOT_KINDS = ("bot_loop", "bot_farm", "bot_bought")
LOOP, FARM, BOUGHT = range(3)

#: Share of bot accounts created shortly before they start streaming (the
#: rest are old accounts, bought or hijacked).
NEW_ACCOUNT_SHARE = 0.85
#: Bought-stream accounts: share of their plays on the promoted artist (the
#: rest are popular tracks, as camouflage).
BOUGHT_TARGET_SHARE = 0.7


@dataclass
class BotAccounts:
    """Ground truth of the bot accounts; bot ``i`` is internal user ``first_user + i``."""

    first_user: int
    kind: np.ndarray  # index into BOT_KINDS
    farm_id: np.ndarray  # -1: not in a farm
    campaign_id: np.ndarray  # -1: not a bought-stream account
    target_artist: np.ndarray  # -1: none
    target_counts: np.ndarray  # number of target tracks of each account
    target_tracks: np.ndarray  # the targets, concatenated in account order
    overlapping: np.ndarray  # plays overlap in time (several devices on one account)
    created_ms: np.ndarray
    consent: np.ndarray
    farm_size: np.ndarray  # accounts per farm
    farm_catalogue: list[np.ndarray]  # target tracks per farm

    def __len__(self) -> int:
        return len(self.kind)


@dataclass
class _Part:
    """Plays and accounts of one bot kind (account indices local to the part)."""

    account: np.ndarray
    track: np.ndarray
    t_ms: np.ndarray
    ms: np.ndarray
    n_accounts: int
    farm_id: np.ndarray
    campaign_id: np.ndarray
    target_artist: np.ndarray
    target_counts: np.ndarray
    target_tracks: np.ndarray
    overlapping: np.ndarray


def _run_times(run_start: np.ndarray, run_count: np.ndarray, interval: np.ndarray) -> np.ndarray:
    """Start times of back-to-back plays.

    Run ``r`` starts at ``run_start[r]`` and holds ``run_count[r]`` plays; each
    play starts ``interval`` ms after the previous one of its run.
    """
    seg, _, starts = segments(run_count)
    cs = np.cumsum(interval) - interval  # exclusive running sum
    return run_start[seg] + cs - cs[starts[seg]]


def _runs(counts_per_account: np.ndarray, start_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One run per account and active day: (account, day) of every run."""
    acc, pos, _ = segments(counts_per_account)
    return acc, start_day[acc] + pos


def _loop_bots(
    rng: np.random.Generator, scale: Scale, cat: Catalogue, budget: float, pools: dict
) -> _Part:
    """Accounts looping 1-3 tracks for hours, each play just over 30 s."""
    W = scale.window_days
    n = max(2, round(budget / (850 * 5.5)))
    per = budget / n
    d = np.clip(np.round(per / rng.uniform(300, 1400, n)), 1, min(10, W)).astype(np.int64)
    r = np.clip(np.round(per / d), 40, 2_400).astype(np.int64)
    k = rng.integers(1, 4, n)
    # Half stream a content farm's tracks, half some human artist's.
    targets = np.where(
        rng.random((n, 3)) < 0.5,
        rng.choice(pools["farm_old"], (n, 3)),
        rng.choice(pools["human_old"], (n, 3)),
    )
    overlap = rng.random(n) < 0.3
    overlap[0] = True  # at least one impossible sequence on every platform
    start_day = rng.integers(0, W - d + 1)

    run_acc, run_day = _runs(d, start_day)
    n_runs = len(run_acc)
    run_count = np.maximum(1, np.round(r[run_acc] * rng.uniform(0.9, 1.1, n_runs))).astype(np.int64)
    est_len = run_count * np.where(overlap[run_acc], 16_500, 33_000)
    slack = np.maximum(MS_PER_DAY - est_len, 0)
    run_start = run_day * MS_PER_DAY + (rng.random(n_runs) * slack).astype(np.int64)

    seg, pos, _ = segments(run_count)
    acc = run_acc[seg]
    m = len(seg)
    track = targets[acc, pos % k[acc]]
    ms = np.minimum(30_000 + rng.integers(0, 4_000, m), cat.track_duration_ms[track])
    # Several devices on one account: the next play starts before this one ends.
    interval = np.where(
        overlap[acc], rng.integers(8_000, 25_000, m), ms + rng.integers(200, 1_500, m)
    )
    t = _run_times(run_start, run_count, interval)
    used = np.arange(3)[None, :] < k[:, None]
    return _Part(
        acc,
        track,
        t,
        ms,
        n,
        farm_id=np.full(n, -1),
        campaign_id=np.full(n, -1),
        target_artist=np.full(n, -1),
        target_counts=k,
        target_tracks=targets[used],
        overlapping=overlap,
    )


def _farms(
    rng: np.random.Generator, scale: Scale, cat: Catalogue, budget: float, pools: dict
) -> tuple[_Part, list[np.ndarray]]:
    """Stream farms: groups of accounts playing one small catalogue alike, all day."""
    W = scale.window_days
    lo, hi = scale.farm_size
    n_farms = max(1, scale.n_farms)
    budgets = rng.dirichlet(np.full(n_farms, 4.0)) * budget
    farm_labels = np.flatnonzero(cat.label_kind == 2)
    farm_old = pools["farm_old"]
    farm_old_label = cat.artist_label[cat.track_artist[farm_old]]

    parts: list[dict[str, np.ndarray]] = []
    catalogues: list[np.ndarray] = []
    sizes = np.zeros(n_farms, np.int64)
    acc_base = 0
    for f in range(n_farms):  # a loop over farms, each vectorised over its plays
        # Big enough for the budget to buy each account a day of heavy streaming.
        s = int(np.clip(rng.integers(lo, hi + 1), lo, max(lo, budgets[f] // 80)))
        d = int(np.clip(round(budgets[f] / (s * rng.uniform(80, 300))), 1, min(14, W)))
        r = int(np.clip(round(budgets[f] / (s * d)), 20, 1_800))
        # The catalogue: mostly the fronting label's AI tracks, some real artists.
        n_cat = int(rng.integers(10, 61))
        own = farm_old[farm_old_label == farm_labels[f % len(farm_labels)]]
        own = own if len(own) >= 5 else farm_old
        n_farm_cat = min(len(own), round(0.8 * n_cat))
        n_human = min(len(pools["human_clients"]), max(1, round(n_farm_cat / 4)))
        catalogue = rng.permutation(
            np.r_[
                rng.choice(own, n_farm_cat, replace=False),
                rng.choice(pools["human_clients"], n_human, replace=False),
            ]
        )
        catalogues.append(catalogue)
        sizes[f] = s
        start_day = int(rng.integers(0, W - d + 1))
        hour = int(rng.integers(0, 7))

        run_acc, run_day = _runs(np.full(s, d), np.full(s, start_day))
        n_runs = len(run_acc)
        run_count = np.maximum(1, np.round(r * rng.uniform(0.95, 1.05, n_runs))).astype(np.int64)
        # All accounts start within minutes of each other.
        run_start = run_day * MS_PER_DAY + hour * MS_PER_HOUR + rng.integers(0, 600_000, n_runs)
        seg, pos, _ = segments(run_count)
        acc = run_acc[seg]
        m = len(seg)
        offset = rng.integers(0, 3, s)  # near-identical order, slightly shifted
        track = catalogue[(pos + offset[acc]) % len(catalogue)]
        ms = np.minimum(30_000 + rng.integers(0, 3_000, m), cat.track_duration_ms[track])
        interval = ms + rng.integers(500, 2_500, m)
        t = _run_times(run_start, run_count, interval)
        parts.append({"account": acc + acc_base, "track": track, "t": t, "ms": ms})
        acc_base += s

    n = acc_base
    farm_id = np.repeat(np.arange(n_farms), sizes)
    cat_sizes = np.array([len(c) for c in catalogues])
    part = _Part(
        np.concatenate([p["account"] for p in parts]),
        np.concatenate([p["track"] for p in parts]),
        np.concatenate([p["t"] for p in parts]),
        np.concatenate([p["ms"] for p in parts]),
        n,
        farm_id=farm_id,
        campaign_id=np.full(n, -1),
        target_artist=np.full(n, -1),
        target_counts=cat_sizes[farm_id],
        target_tracks=np.concatenate(
            [np.tile(c, s) for c, s in zip(catalogues, sizes, strict=True)]
        ),
        overlapping=np.zeros(n, bool),
    )
    return part, catalogues


def _bought(
    rng: np.random.Generator, scale: Scale, cat: Catalogue, budget: float, pools: dict
) -> _Part:
    """Accounts paid to promote one real verified artist, camouflaged by popular tracks."""
    W = scale.window_days
    n = max(2, round(budget / 600))
    n_camp = max(1, round(n / 12))
    # Mid-popularity verified artists on good labels, with tracks to promote.
    artist_ok = (
        (cat.artist_kind == 0)
        & cat.artist_verified
        & np.isin(cat.label_status[cat.artist_label], [VERIFIED, TRUSTED])
        & (cat.artist_pct >= 0.2)
        & (cat.artist_pct <= 0.85)
    )
    has_track = np.zeros(cat.n_artists, bool)
    has_track[cat.track_artist[pools["human_old_active"]]] = True
    cand = np.flatnonzero(artist_ok & has_track)
    camp_artist = rng.choice(cand, n_camp, replace=len(cand) < n_camp)
    camp = rng.permutation(np.arange(n) % n_camp)
    camp_start = rng.integers(0, W - 30 + 1, n_camp)

    d = rng.integers(5, 31, n)
    start_day = np.minimum(camp_start[camp] + rng.integers(0, 5, n), W - d)
    per = budget / n
    r = np.clip(np.round(per / d), 10, 300).astype(np.int64)
    run_acc, run_day = _runs(d, start_day)
    n_runs = len(run_acc)
    run_count = np.maximum(1, np.round(r[run_acc] * rng.uniform(0.8, 1.2, n_runs))).astype(np.int64)
    run_start = run_day * MS_PER_DAY + rng.integers(8 * MS_PER_HOUR, 22 * MS_PER_HOUR, n_runs)

    seg, _, _ = segments(run_count)
    acc = run_acc[seg]
    m = len(seg)
    # The promoted artist's tracks, concatenated per campaign.
    old_active = pools["human_old_active"]
    artist_of = cat.track_artist[old_active]
    by_camp = [old_active[artist_of == a] for a in camp_artist]  # loop over campaigns
    counts = np.array([len(x) for x in by_camp])
    offsets = np.cumsum(counts) - counts
    flat = np.concatenate(by_camp)
    c = camp[acc]
    target_track = flat[offsets[c] + (rng.random(m) * counts[c]).astype(np.int64)]
    popular = pools["popular"]
    camo_track = popular[rng.integers(0, len(popular), m)]
    is_target = rng.random(m) < BOUGHT_TARGET_SHARE
    track = np.where(is_target, target_track, camo_track)
    dur = cat.track_duration_ms[track]
    natural = np.maximum(30_000, (dur * rng.uniform(0.5, 1.0, m)).astype(np.int64))
    ms = np.minimum(np.where(is_target, 30_000 + rng.integers(0, 6_000, m), natural), dur)
    interval = ms + rng.integers(500, 3_000, m)
    t = _run_times(run_start, run_count, interval)
    return _Part(
        acc,
        track,
        t,
        ms,
        n,
        farm_id=np.full(n, -1),
        campaign_id=camp,
        target_artist=camp_artist[camp],
        target_counts=np.zeros(n, np.int64),
        target_tracks=np.zeros(0, np.int64),
        overlapping=np.zeros(n, bool),
    )


def bot_streams(
    rng: np.random.Generator,
    scale: Scale,
    cat: Catalogue,
    n_genuine_streams: int,
    first_user: int,
) -> tuple[Plays, BotAccounts]:
    """Bot accounts and their streams, sized to ``scale.bot_share`` of all streams.

    Parameters
    ----------
    rng
        The platform's random generator.
    scale
        Sizes and the bot mix.
    cat
        The catalogue (targets are tracks released before the window).
    n_genuine_streams
        Genuine plays already generated; bot plays are sized against them.
    first_user
        Internal user index of the first bot.

    Returns
    -------
    Plays
        Bot plays (user indices from ``first_user``), in no particular order.
    BotAccounts
        The ground truth of every bot account.
    """
    W = scale.window_days
    now_ms = W * MS_PER_DAY - 1_000
    total = scale.bot_share / (1.0 - scale.bot_share) * n_genuine_streams
    old = cat.track_release_day < 0
    active = cat.track_status == ACTIVE
    human = ~cat.track_farm
    good_artist = cat.artist_verified[cat.track_artist] & np.isin(
        cat.label_status[cat.artist_label[cat.track_artist]], [VERIFIED, TRUSTED]
    )
    human_old_active = np.flatnonzero(human & old & active)
    top = human_old_active[np.argsort(-cat.track_weight[human_old_active], kind="stable")]
    pools = {
        "farm_old": np.flatnonzero(cat.track_farm & old),
        "human_old": np.flatnonzero(human & old),
        "human_old_active": human_old_active,
        # Real artists who pay farms: verified, not among the very popular.
        "human_clients": np.flatnonzero(
            human & old & active & good_artist & (cat.artist_pct[cat.track_artist] < 0.7)
        ),
        "popular": top[: max(10, min(300, len(top) // 20))],
    }
    mix = scale.bot_mix
    loop = _loop_bots(rng, scale, cat, total * mix[LOOP], pools)
    farm, catalogues = _farms(rng, scale, cat, total * mix[FARM], pools)
    bought = _bought(rng, scale, cat, total * mix[BOUGHT], pools)
    parts = (loop, farm, bought)

    base = np.cumsum([0] + [p.n_accounts for p in parts])
    account = np.concatenate([p.account + base[i] for i, p in enumerate(parts)])
    t = np.concatenate([p.t_ms for p in parts])
    keep = t <= now_ms
    n = int(base[-1])
    first_t = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_t, account, t)
    # Accounts whose every run fell after "now" still exist; date them to the window end.
    first_t = np.minimum(first_t, now_ms)

    new = rng.random(n) < NEW_ACCOUNT_SHARE
    created = np.where(
        new,
        first_t - rng.integers(MS_PER_HOUR, 45 * MS_PER_DAY, n),
        -rng.integers(100, 3_000, n) * MS_PER_DAY,
    )
    created = np.minimum(created, first_t - MS_PER_HOUR)
    accounts = BotAccounts(
        first_user=first_user,
        kind=np.repeat(np.arange(3), [p.n_accounts for p in parts]),
        farm_id=np.concatenate([p.farm_id for p in parts]),
        campaign_id=np.concatenate([p.campaign_id for p in parts]),
        target_artist=np.concatenate([p.target_artist for p in parts]),
        target_counts=np.concatenate([p.target_counts for p in parts]),
        target_tracks=np.concatenate([p.target_tracks for p in parts]),
        overlapping=np.concatenate([p.overlapping for p in parts]),
        created_ms=created,
        consent=rng.random(n) < 0.97,
        farm_size=np.bincount(farm.farm_id, minlength=len(catalogues)),
        farm_catalogue=catalogues,
    )
    plays = Plays(
        (account[keep] + first_user).astype(np.int32),
        np.concatenate([p.track for p in parts])[keep].astype(np.int32),
        t[keep],
        np.concatenate([p.ms for p in parts])[keep].astype(np.int64),
    )
    logger.debug(
        "bots: %d accounts (%s), %d plays",
        n,
        dict(zip(BOT_KINDS, (p.n_accounts for p in parts), strict=True)),
        len(plays),
    )
    return plays, accounts
