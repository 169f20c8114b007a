"""Attack injection writes valid contracts; the fraud defence flags the fake groups only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.contract.load import load_contract
from recsys.evaluation.attacks import (
    ATTACK_KINDS,
    FAKE_PREFIX,
    Attack,
    inject_attack,
    pick_targets,
    target_hit_ratio,
)
from recsys.fraud import FraudDetector
from tests.fraud.builders import DURATION_MS, Platform, genuine_plays
from tests.helpers import write_tables


@pytest.fixture(scope="module")
def plays_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tables(tmp_path_factory.mktemp("genuine"), genuine_plays(n_users=300, seed=1))


@pytest.fixture(scope="module")
def targets(plays_dir: Path) -> tuple[str, ...]:
    # Modest popularity for a platform of 300 listeners: 8-16 of them (3-5 %).
    return pick_targets(plays_dir, 5, min_listeners=8, max_listeners=16, random_state=0)


def test_pick_targets_draws_from_the_band(plays_dir: Path, targets: tuple[str, ...]) -> None:
    plays = pd.read_parquet(plays_dir / "plays.parquet")
    listeners = plays.groupby("track_id")["user_id"].nunique()
    assert len(set(targets)) == 5 and list(targets) == sorted(targets)
    assert listeners[list(targets)].between(8, 16).all()
    again = pick_targets(plays_dir, 5, min_listeners=8, max_listeners=16, random_state=0)
    assert again == targets  # reproducible
    with pytest.raises(ValueError, match="listeners"):
        pick_targets(plays_dir, 5, min_listeners=10_000, max_listeners=20_000)


@pytest.mark.parametrize("kind", ATTACK_KINDS)
def test_injection_writes_a_valid_contract(
    kind: str, plays_dir: Path, targets: tuple[str, ...], tmp_path: Path
) -> None:
    out = tmp_path / "attacked"
    injected = inject_attack(plays_dir, out, Attack(kind, 0.05, targets, random_state=3))
    data = load_contract(out)  # validates every table
    assert data.quarantine.total == 0
    genuine = pd.read_parquet(plays_dir / "plays.parquet")
    plays = pd.read_parquet(out / "plays.parquet")
    users = pd.read_parquet(out / "users.parquet")
    assert len(injected.fake_user_ids) == 15  # 5 % of 300
    assert users["user_id"].str.startswith(FAKE_PREFIX).sum() == 15
    assert set(injected.fake_user_ids) == set(users["user_id"][-15:])
    # Genuine rows are untouched, the other tables copied.
    pd.testing.assert_frame_equal(plays.iloc[: len(genuine)], genuine)
    assert (out / "tracks.parquet").exists() and (out / "artists.parquet").exists()
    fake = plays.loc[plays["user_id"].str.startswith(FAKE_PREFIX)]
    assert len(fake) == injected.rows
    # Every fake account promotes every target, at fan level (>= the genuine 90th percentile).
    per_account = fake.loc[fake["track_id"].isin(targets)].groupby("user_id")["track_id"].nunique()
    assert (per_account == 5).all() and len(per_account) == 15
    floor = np.quantile(genuine["plays"], 0.9)
    assert (fake.loc[fake["track_id"].isin(targets), "plays"] >= floor).all()
    # ... and pads its profile with 10 other tracks (a farm account adds two of its own).
    assert (fake.groupby("user_id").size() <= 15 + (2 if kind == "farm" else 0)).all()
    listeners_before = genuine.groupby("track_id")["user_id"].nunique()
    listeners_after = plays.groupby("track_id")["user_id"].nunique()
    assert (listeners_after[list(targets)] == listeners_before[list(targets)] + 15).all()


def test_attack_options(plays_dir: Path, targets: tuple[str, ...], tmp_path: Path) -> None:
    listeners = pd.read_parquet(plays_dir / "plays.parquet").groupby("track_id").size()

    def fillers(attack: Attack) -> pd.DataFrame:
        inject_attack(plays_dir, tmp_path / "a", attack)
        plays = pd.read_parquet(tmp_path / "a" / "plays.parquet")
        fake = plays.loc[plays["user_id"].str.startswith(FAKE_PREFIX)]
        return fake.loc[~fake["track_id"].isin(targets)]

    weighted = fillers(Attack("random", 0.1, targets, filler=30))
    uniform = fillers(Attack("random", 0.1, targets, filler=30, random_fillers="uniform"))
    # In proportion to listeners, fillers are the platform's popular tracks; uniformly, not.
    assert listeners[weighted["track_id"]].mean() > 1.5 * listeners[uniform["track_id"]].mean()
    popular = set(listeners.sort_values(ascending=False).index[:20])
    assert set(fillers(Attack("bandwagon", 0.1, targets))["track_id"]) <= popular

    inject_attack(
        plays_dir,
        tmp_path / "b",
        Attack("bandwagon", 0.1, targets, targets_per_account=1, target_plays=77),
    )
    plays = pd.read_parquet(tmp_path / "b" / "plays.parquet")
    fake = plays.loc[plays["user_id"].str.startswith(FAKE_PREFIX) & plays["track_id"].isin(targets)]
    assert (fake.groupby("user_id").size() == 1).all()
    assert fake["track_id"].value_counts().to_dict() == {t: 6 for t in targets}
    assert (fake["plays"] == 77).all()
    with pytest.raises(ValueError, match="unknown target"):
        inject_attack(plays_dir, tmp_path / "c", Attack("random", 0.1, ("nope",)))


@pytest.mark.parametrize("kind", ATTACK_KINDS)
def test_defence_flags_the_fake_group_and_nobody_else(
    kind: str, plays_dir: Path, targets: tuple[str, ...], tmp_path: Path
) -> None:
    out = tmp_path / "attacked"
    inject_attack(plays_dir, out, Attack(kind, 0.05, targets, random_state=1))
    data = load_contract(out)
    result = FraudDetector().detect(data)
    fake = data.users["user_id"].str.startswith(FAKE_PREFIX).to_numpy()
    assert result.account_flagged[fake].all()
    assert not result.account_flagged[~fake].any()
    assert "campaign" in result.accounts["reasons"].iloc[0]
    # The core is targets only: at least four of them (a target that a few
    # genuine listeners happen to share with another may be left out).
    core = set(data.tracks["track_id"].to_numpy()[np.concatenate(result.campaign_tracks)])
    assert core <= set(targets) and len(core) >= 4
    # The rows the event stage drops are exactly the fake accounts' rows.
    fake_rows = fake[data.plays["user_idx"].to_numpy()]
    np.testing.assert_array_equal(result.stream_flagged, fake_rows)


def test_streams_injection_is_physically_possible(tmp_path: Path) -> None:
    p = Platform(n_tracks=60, n_artists=20)
    rng = np.random.default_rng(0)
    for i in range(40):
        p.add_user(f"u{i}")
        p.back_to_back(f"u{i}", rng.choice(60, 12, replace=False), i * 3_600_000, DURATION_MS)
    src = write_tables(tmp_path / "src", p.tables())
    injected = inject_attack(
        src, tmp_path / "out", Attack("farm", 0.25, ("t1", "t2"), filler=5, popular_pool=10)
    )
    data = load_contract(tmp_path / "out")
    assert data.event_table == "streams" and data.quarantine.total == 0
    streams = pd.read_parquet(tmp_path / "out" / "streams.parquet")
    fake = streams.loc[streams["user_id"].isin(injected.fake_user_ids)]
    assert len(fake) == injected.rows and fake["user_id"].nunique() == 10
    # One play at a time: each starts after the previous one of the account ended.
    for _, g in fake.groupby("user_id"):
        g = g.sort_values("ts")
        start_ms = (g["ts"] - g["ts"].min()).dt.total_seconds().to_numpy() * 1000
        assert (np.diff(start_ms) >= g["ms_played"].to_numpy()[:-1] - 1).all()


def test_target_hit_ratio() -> None:
    lists = [["a", "b"], ["c"], [], ["t", "a"]]
    assert target_hit_ratio(lists, ("t", "c")) == 0.5
    assert target_hit_ratio([], ("t",)) == 0.0
