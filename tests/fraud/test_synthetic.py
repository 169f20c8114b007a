"""On the tiny synthetic platform: high recall and precision per fraud kind; plays-only mode."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.contract.load import ContractData, load_contract
from recsys.contract.schema import MIN_STREAM_MS
from recsys.fraud import ACCOUNT_REASONS, PROFILE_REASONS, STREAM_REASONS, FraudDetector
from recsys.synth import generate_platform

KINDS = ("bot_loop", "bot_farm", "bot_bought")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    generate_platform(out, scale="tiny", seed=0)
    return out


def _kinds(data: ContractData, platform: Path) -> np.ndarray:
    """Ground truth per user row (tests only: the detector never reads _truth)."""
    truth = pd.read_parquet(platform / "_truth" / "accounts.parquet", columns=["user_id", "kind"])
    return data.users[["user_id"]].merge(truth, on="user_id", how="left")["kind"].to_numpy()


def test_tiny_platform_recall_and_precision_per_kind(platform: Path) -> None:
    data = load_contract(platform)
    result = FraudDetector().detect(data)
    kind = _kinds(data, platform)
    flagged = result.account_flagged
    false_pos = int((flagged & (kind == "genuine")).sum())
    for k in KINDS:
        members = kind == k
        assert members.any()
        hit = int((flagged & members).sum())
        assert hit / members.sum() >= 0.95, k
        assert hit / (hit + false_pos) >= 0.95, k
    assert flagged[kind != "genuine"].all()
    # Genuine streams (>= 30 s) lost to the filter: under 0.5 %.
    row_kind = kind[data.streams["user_idx"].to_numpy()]
    streams = data.streams["ms_played"].to_numpy() >= MIN_STREAM_MS
    genuine_rows = (row_kind == "genuine") & streams
    assert result.stream_flagged[genuine_rows].mean() < 0.005
    # Every fraudulent stream is caught, short plays never are.
    assert result.stream_flagged[(row_kind != "genuine") & streams].all()
    assert not result.stream_flagged[~streams].any()
    summary = result.summary()
    assert summary["flagged_accounts"] == int(flagged.sum())
    assert summary["farms"] >= 1


def test_plays_only_platform_runs_profile_rules_only(platform: Path, tmp_path: Path) -> None:
    # The same platform as a plays-only export: user x track counts of streams.
    plays_dir = tmp_path / "plays"
    plays_dir.mkdir()
    for f in platform.glob("*.parquet"):
        if f.name != "streams.parquet":
            shutil.copy(f, plays_dir / f.name)
    streams = pd.read_parquet(platform / "streams.parquet")
    streams = streams[streams["ms_played"] >= MIN_STREAM_MS]
    plays = streams.groupby(["user_id", "track_id"]).size().rename("plays").reset_index()
    plays.to_parquet(plays_dir / "plays.parquet", index=False)

    data = load_contract(plays_dir)
    assert data.event_table == "plays"
    result = FraudDetector().detect(data)
    assert result.rules_run == tuple(f"account:{r}" for r in PROFILE_REASONS)
    time_rules = set(STREAM_REASONS) | {
        f"account:{r}" for r in ACCOUNT_REASONS if r not in PROFILE_REASONS
    }
    assert set(result.rules_skipped) == time_rules
    assert all("plays" in why for why in result.rules_skipped.values())
    summary = result.summary()
    assert summary["event_table"] == "plays" and summary["rules_skipped"] == result.rules_skipped
    assert all(summary["flagged_streams_per_reason"][r] == 0 for r in time_rules)
    # Farms are still found from the counts alone.
    kind = _kinds(data, platform)
    assert result.account_flagged[kind == "bot_farm"].all()
    assert len(result.stream_reason) == len(data.plays)
