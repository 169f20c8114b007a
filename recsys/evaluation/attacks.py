"""Poisoning-attack simulation: inject fake accounts that promote target tracks.

Stream fraud is also a data-poisoning attack on collaborative filtering: fake
listeners who play target tracks next to popular ones push the targets into
real users' recommendations. This module writes a copy of a contract
directory with fake accounts added, following the classic shilling-attack
models (Lam and Riedl 2004; Mobasher et al. 2007):

- ``random``: each fake account plays the targets plus filler tracks drawn at
  random from the catalogue that has listeners: by default in proportion to
  their listeners (a random sample of what the platform plays; drawing
  uniformly over the catalogue mostly picks tracks nobody else plays, which
  barely moves a factorisation model: see ``docs/fraud.md``), or uniformly;
- ``bandwagon``: filler drawn from the most popular tracks, so that the
  targets co-occur with what everybody listens to;
- ``farm``: a group of accounts sharing one filler set (popular tracks) and
  the targets, with small per-account variations, as a stream farm does.

Play counts of fillers are drawn from the genuine per-pair distribution;
targets get what a devoted fan plays (by default each (account, target) pair
draws from the genuine counts at or above their 90th percentile, so the fake
accounts do not share one telltale count). With a ``streams`` table the fake
plays become stream rows that are physically possible (one at a time, full
length), so only behaviour, not clumsy timing, can give the accounts away.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from recsys.evaluation.protocols import read_table

logger = logging.getLogger(__name__)

AttackKind = Literal["random", "bandwagon", "farm"]
RandomFillers = Literal["popularity", "uniform"]
ATTACK_KINDS: tuple[AttackKind, ...] = ("random", "bandwagon", "farm")
FAKE_PREFIX = "fake-"


@dataclass(frozen=True)
class Attack:
    """One attack to inject.

    Parameters
    ----------
    kind
        ``random``, ``bandwagon`` or ``farm``.
    share
        Fake accounts as a fraction of the existing users (0.01 = 1 %).
    targets
        Track ids to promote.
    filler
        Other tracks per fake account. The defaults (10 fillers, from the 20
        most listened tracks for ``bandwagon`` and ``farm``) are the
        strongest of those measured against the engine on Last.fm (see
        ``docs/fraud.md``): fake accounts that look like casual listeners of
        the charts move the targets more than ones with long profiles.
    target_plays
        Plays (or streams) of each target per fake account; ``None``: drawn
        for every (account, target) pair from the genuine per-pair counts at
        or above their ``target_quantile`` quantile, i.e. what a devoted fan plays.
    popular_pool
        Bandwagon and farm fillers are drawn from this many most-listened tracks.
    random_state
        Seed.
    random_fillers
        ``random`` attack only: ``"popularity"`` draws fillers in proportion
        to their listeners, ``"uniform"`` uniformly over the tracks that have
        listeners (the textbook random attack, much weaker here).
    targets_per_account
        How many of the targets each fake account plays (spread evenly over
        the accounts, in turn); ``None``: all of them.
    target_quantile
        See ``target_plays``.
    """

    kind: AttackKind
    share: float
    targets: tuple[str, ...]
    filler: int = 10
    target_plays: int | None = None
    popular_pool: int = 20
    random_state: int = 0
    random_fillers: RandomFillers = "popularity"
    targets_per_account: int | None = None
    target_quantile: float = 0.9


@dataclass(frozen=True)
class Injected:
    """What was injected: the fake user ids and the promoted tracks."""

    fake_user_ids: tuple[str, ...]
    targets: tuple[str, ...]
    rows: int


def pick_targets(
    directory: str | Path,
    n: int = 5,
    *,
    min_listeners: int = 10,
    max_listeners: int = 40,
    random_state: int = 0,
) -> tuple[str, ...]:
    """Draw ``n`` target tracks of modest popularity (a typical promotion target).

    Targets are tracks with between ``min_listeners`` and ``max_listeners``
    distinct listeners in the event table, so that they exist in the model
    without an attack and their hit ratio then is small but measurable.
    """
    directory = Path(directory)
    events = read_table(directory, "plays")
    if events is None:
        events = read_table(directory, "streams")
    assert events is not None
    listeners = events.groupby("track_id")["user_id"].nunique()
    band = listeners[(listeners >= min_listeners) & (listeners <= max_listeners)]
    if len(band) < n:
        raise ValueError(f"only {len(band)} tracks have {min_listeners}-{max_listeners} listeners")
    rng = np.random.default_rng(random_state)
    return tuple(sorted(rng.choice(band.index.to_numpy(), size=n, replace=False)))


def inject_attack(src: str | Path, out: str | Path, attack: Attack) -> Injected:
    """Copy the contract directory ``src`` to ``out`` with fake accounts added.

    Parameters
    ----------
    src
        Contract directory (``plays`` or ``streams``).
    out
        Destination (replaced if it exists); ``_truth`` is not copied.
    attack
        What to inject.

    Returns
    -------
    Injected
    """
    src, out = Path(src), Path(out)
    if attack.kind not in ATTACK_KINDS:
        raise ValueError(f"unknown attack kind {attack.kind!r}")
    rng = np.random.default_rng(attack.random_state)
    users = read_table(src, "users")
    tracks = read_table(src, "tracks")
    plays = read_table(src, "plays")
    streams = read_table(src, "streams") if plays is None else None
    assert users is not None and tracks is not None
    events = plays if plays is not None else streams
    assert events is not None
    missing = set(attack.targets) - set(tracks["track_id"])
    if missing:
        raise ValueError(f"unknown target tracks: {sorted(missing)}")

    if plays is not None:
        pair_counts = plays.set_index(["user_id", "track_id"])["plays"]
    else:
        pair_counts = streams.groupby(["user_id", "track_id"]).size()
    genuine_counts = pair_counts.to_numpy()
    # What a devoted fan plays: the upper part of the genuine per-pair counts.
    fan_counts = genuine_counts[
        genuine_counts >= np.quantile(genuine_counts, attack.target_quantile)
    ]
    listeners = pair_counts.reset_index().groupby("track_id")["user_id"].nunique()
    listeners = listeners.drop(index=list(attack.targets), errors="ignore")
    popular = listeners.sort_values(ascending=False).index.to_numpy()[: attack.popular_pool]
    catalogue = listeners.index.to_numpy()
    weights = listeners.to_numpy(np.float64) / listeners.sum()

    n_fake = max(1, round(attack.share * len(users)))
    fake_ids = [f"{FAKE_PREFIX}{attack.kind}-{i:05d}" for i in range(n_fake)]
    shared = rng.choice(popular, size=min(attack.filler, len(popular)), replace=False)
    targets = np.asarray(attack.targets, dtype=object)
    per_account = len(targets) if attack.targets_per_account is None else attack.targets_per_account
    per_account = max(1, min(per_account, len(targets)))
    rows_u, rows_t, rows_c = [], [], []
    for i, uid in enumerate(fake_ids):
        if attack.kind == "random":
            size = min(attack.filler, len(catalogue))
            p = weights if attack.random_fillers == "popularity" else None
            filler = rng.choice(catalogue, size=size, replace=False, p=p)
        elif attack.kind == "bandwagon":
            filler = rng.choice(popular, size=min(attack.filler, len(popular)), replace=False)
        else:
            # Farm accounts share one list, each dropping and adding a couple of tracks.
            keep = shared[rng.random(len(shared)) > 0.05]
            extra = rng.choice(popular, size=2, replace=False)
            filler = np.unique(np.concatenate([keep, extra]))
        filler = filler[~np.isin(filler, targets)]
        # The accounts take the targets in turn, so each target gets its share of them.
        mine = targets[(i * per_account + np.arange(per_account)) % len(targets)]
        counts = rng.choice(genuine_counts, size=len(filler))
        if attack.target_plays is not None:
            t_counts = np.full(len(mine), attack.target_plays)
        else:
            t_counts = rng.choice(fan_counts, size=len(mine))
        rows_u += [uid] * (len(filler) + len(mine))
        rows_t += list(filler) + list(mine)
        rows_c += list(counts) + list(t_counts)
    fake = pd.DataFrame({"user_id": rows_u, "track_id": rows_t, "plays": rows_c})
    fake["plays"] = fake["plays"].astype(np.int64).clip(lower=1)

    if out.exists():
        shutil.rmtree(out)
    skip = {"users", "plays", "streams"}
    out.mkdir(parents=True)
    for p in src.iterdir():
        if p.is_file() and p.stem not in skip:
            shutil.copy2(p, out / p.name)

    created = pd.Timestamp("2026-01-01", tz="UTC")
    if (
        "created_at" in users
        and len(users)
        and pd.api.types.is_datetime64_any_dtype(users["created_at"])
    ):
        created = users["created_at"].max()
    new_users = pd.DataFrame(
        {
            "user_id": fake_ids,
            "personalization_consent": True,
            "created_at": pd.Series([created] * n_fake, dtype=users["created_at"].dtype)
            if "created_at" in users
            else created,
        }
    )
    pd.concat([users, new_users], ignore_index=True).to_parquet(out / "users.parquet", index=False)

    if plays is not None:
        merged = pd.concat(
            [plays, fake[plays.columns.intersection(fake.columns)]], ignore_index=True
        )
        merged.to_parquet(out / "plays.parquet", index=False)
        n_rows = len(fake)
    else:
        fake_streams = _as_streams(fake, tracks, streams, rng)
        merged = pd.concat([streams, fake_streams[streams.columns]], ignore_index=True)
        merged.to_parquet(out / "streams.parquet", index=False)
        n_rows = len(fake_streams)
    logger.info(
        "injected %d %s accounts (%d rows) promoting %d tracks",
        n_fake,
        attack.kind,
        n_rows,
        len(attack.targets),
    )
    return Injected(tuple(fake_ids), tuple(attack.targets), n_rows)


def _as_streams(
    fake: pd.DataFrame, tracks: pd.DataFrame, streams: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    """Expand fake (user, track, count) rows into full-length, non-overlapping streams."""
    duration = tracks.set_index("track_id")["duration_ms"]
    rep = fake.loc[fake.index.repeat(fake["plays"])].reset_index(drop=True)
    rep = rep.sample(frac=1.0, random_state=int(rng.integers(2**31))).reset_index(drop=True)
    rep["ms_played"] = duration.reindex(rep["track_id"]).fillna(180_000).to_numpy().astype(np.int64)
    ts = pd.to_datetime(streams["ts"], utc=True)
    start, end = ts.min(), ts.max()
    span_ms = max(int((end - start).total_seconds() * 1000), 1)
    out = []
    for _, g in rep.groupby("user_id", sort=False):
        # One play after the other, with gaps spread over the window.
        gaps = rng.exponential(1.0, size=len(g))
        free = max(span_ms - int(g["ms_played"].sum()), 0)
        offsets = np.cumsum(gaps) / gaps.sum() * free * 0.95
        starts = offsets + np.concatenate([[0], np.cumsum(g["ms_played"].to_numpy())[:-1]])
        g = g.assign(ts=start + pd.to_timedelta(starts.astype(np.int64), unit="ms"))
        out.append(g)
    result = pd.concat(out, ignore_index=True)
    result["ts"] = result["ts"].astype(streams["ts"].dtype) if "ts" in streams else result["ts"]
    return result


def target_hit_ratio(top_track_ids: list[list[str]], targets: tuple[str, ...]) -> float:
    """Share of users whose list contains at least one target track."""
    if not top_track_ids:
        return 0.0
    t = set(targets)
    return float(np.mean([bool(t.intersection(row)) for row in top_track_ids]))
