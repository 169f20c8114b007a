"""Known answers on tiny hand-made platforms, loaded through the contract loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recsys.events import select_training_events
from recsys.fraud import (
    ACCOUNT_REASONS,
    PROFILE_REASONS,
    STREAM_REASONS,
    FraudDetector,
    FraudFilter,
    FraudSettings,
)
from recsys.pool import build_pool
from tests.fraud.builders import DURATION_MS, Platform

H = 3_600_000
DAY = 24 * H
FARM = [f"f{i}" for i in range(5)]


def known_platform() -> Platform:
    """A genuine listener, three clean accounts with one anomaly each, a loop bot, a farm."""
    p = Platform(n_tracks=200, n_artists=40)
    rng = np.random.default_rng(7)
    for u in ("genuine", "seq", "sim", "burst", "loop", *FARM, "home0", "home1"):
        p.add_user(u)
    # A genuine listener: 10 evenings of 15 full plays over 150 tracks.
    for d in range(10):
        p.back_to_back("genuine", rng.choice(150, 15, replace=False), d * DAY + 18 * H, DURATION_MS)
    # Accounts with ordinary listening and one anomaly each.
    for u in ("seq", "sim", "burst"):
        p.back_to_back(u, rng.choice(150, 20, replace=False), 10 * H, DURATION_MS)
    # The second play starts 140 s before the first one can have ended.
    p.play("seq", [5, 6], [DAY + 10 * H, DAY + 10 * H + 60_000], DURATION_MS)
    p.play("sim", [7, 8, 9], DAY + 10 * H, DURATION_MS)  # three plays at the same instant
    p.back_to_back("burst", np.arange(100, 115), 2 * DAY + 12 * H, 35_000)  # 15 x 35 s in 9 min
    # A loop bot: one track 300 times, plus short plays that are not streams.
    p.back_to_back("loop", np.full(300, 3), 3 * DAY, DURATION_MS)
    p.back_to_back("loop", np.full(5, 3), 5 * DAY, 10_000)
    # A farm: five accounts playing the same 15 tracks three times, minutes apart.
    for i, u in enumerate(FARM):
        order = np.roll(np.arange(150, 165), i)
        p.back_to_back(u, np.tile(order, 3), 4 * DAY + 2 * H + i * 60_000, DURATION_MS)
    # A household of two sharing a playlist: near-identical, but too few for a farm.
    for i, u in enumerate(("home0", "home1")):
        p.back_to_back(u, np.tile(np.arange(170, 185), 2), 6 * DAY + i * DAY, DURATION_MS)
    return p


@pytest.fixture(scope="module")
def platform() -> Platform:
    return known_platform()


@pytest.fixture(scope="module")
def data(platform: Platform, tmp_path_factory: pytest.TempPathFactory):
    return platform.load(tmp_path_factory.mktemp("known"))


@pytest.fixture(scope="module")
def result(data):
    return FraudDetector().detect(data)


def _rows(platform: Platform, user: str) -> np.ndarray:
    frame = platform.plays_frame()
    return np.flatnonzero(frame["user_id"].to_numpy() == user)


def _reasons(result, rows: np.ndarray) -> list[str]:
    names = ("",) + result.reason_names
    return [names[c] for c in result.stream_reason[rows]]


def test_flagged_accounts_and_main_reasons(result) -> None:
    main = dict(zip(result.accounts["user_id"], result.accounts["main_reason"], strict=True))
    assert main == {"loop": "loop", **{u: "farm" for u in FARM}}
    loop = result.accounts.set_index("user_id").loc["loop"]
    assert loop["reasons"].split(";")[0] == "loop"
    assert loop["score"] >= 0.5 and loop["streams"] == 300 and loop["flagged_streams"] == 300
    farm_ids = result.accounts.set_index("user_id").loc[FARM, "farm_id"]
    assert farm_ids.nunique() == 1 and farm_ids.iloc[0] >= 0
    flagged = result.account_flagged
    assert result.account_score[flagged].min() >= 0.5
    assert result.account_score[~flagged].max() < 0.5


def test_stream_reasons_known_answer(platform: Platform, result) -> None:
    assert set(_reasons(result, _rows(platform, "genuine"))) == {""}
    assert set(_reasons(result, _rows(platform, "home0"))) == {""}
    seq = _reasons(result, _rows(platform, "seq"))
    assert seq.count("impossible_sequence") == 1 and seq[-1] == "impossible_sequence"
    assert set(seq[:-1]) == {""}
    sim = _reasons(result, _rows(platform, "sim"))
    assert sim[-3:] == ["", "impossible_sequence", "simultaneous"]
    assert set(sim[:-3]) == {""}
    burst = _reasons(result, _rows(platform, "burst"))
    assert burst[-15:] == ["burst"] * 15 and set(burst[:-15]) == {""}
    loop = _reasons(result, _rows(platform, "loop"))
    assert loop == ["account:loop"] * 300 + [""] * 5  # short plays are never fraud
    for u in FARM:
        assert set(_reasons(result, _rows(platform, u))) == {"account:farm"}


def test_summary_reconciles(result) -> None:
    summary = result.summary()
    json.dumps(summary)  # JSON-able
    per_reason = summary["flagged_streams_per_reason"]
    assert (
        sum(per_reason.values()) == summary["flagged_streams"] == int(result.stream_flagged.sum())
    )
    assert per_reason["account:loop"] == 300 and per_reason["account:farm"] == 5 * 45
    assert per_reason["burst"] == 15 and per_reason["simultaneous"] == 1
    assert per_reason["impossible_sequence"] == 2
    assert (
        sum(summary["flagged_accounts_per_main_reason"].values())
        == summary["flagged_accounts"]
        == 6
    )
    assert summary["rules_skipped"] == {} and len(summary["rules_run"]) == len(result.reason_names)
    assert result.stream_reason.dtype == np.int16
    assert result.reason_names[: len(STREAM_REASONS)] == STREAM_REASONS
    assert result.reason_names[len(STREAM_REASONS) :] == tuple(
        f"account:{r}" for r in ACCOUNT_REASONS
    )


def test_plays_only_runs_profile_rules(platform: Platform, tmp_path: Path) -> None:
    data = platform.load_plays(tmp_path / "plays")
    assert data.event_table == "plays"
    result = FraudDetector().detect(data)
    assert result.rules_run == tuple(f"account:{r}" for r in PROFILE_REASONS)
    skipped = set(STREAM_REASONS) | {
        f"account:{r}" for r in ACCOUNT_REASONS if r not in PROFILE_REASONS
    }
    assert set(result.rules_skipped) == skipped
    assert all("plays" in why for why in result.rules_skipped.values())
    main = dict(zip(result.accounts["user_id"], result.accounts["main_reason"], strict=True))
    assert main == {"loop": "loop", **{u: "farm" for u in FARM}}
    users = data.users["user_id"].to_numpy()[data.plays["user_idx"].to_numpy()]
    flagged_users = set(users[result.stream_flagged])
    assert flagged_users == {"loop", *FARM}
    assert result.summary()["rules_skipped"] == result.rules_skipped


def test_filter_plugs_into_event_stage(data, result) -> None:
    pool = build_pool(data.tracks, data.artists, data.labels, data.opt_outs)
    fraud = FraudFilter(FraudDetector())
    events, report = select_training_events(data, pool.eligible, filters=(fraud,))
    assert fraud.name == "fraud" and report.filters == ("fraud",)
    assert fraud.result is not None
    np.testing.assert_array_equal(fraud.result.stream_reason, result.stream_reason)
    # Short plays count as short, so every flagged stream is counted as fraud.
    assert report.dropped["fraud"] == int(result.stream_flagged.sum())
    with pytest.raises(ValueError, match="whole streams table"):
        fraud(data, data.events.iloc[:3])


def test_disabled_rules_are_reported(data) -> None:
    settings = FraudSettings(disabled_rules=("account:farm", "burst"))
    result = FraudDetector(settings).detect(data)
    assert "disabled" in result.rules_skipped["account:farm"]
    assert "burst" in result.rules_skipped and "burst" not in result.rules_run
    assert result.summary()["flagged_streams_per_reason"]["burst"] == 0
    assert "farm" not in set(result.accounts["main_reason"])
    with pytest.raises(ValueError, match="unknown rules"):
        FraudSettings(disabled_rules=("nope",))


def test_tolerance_allows_crossfade(tmp_path: Path) -> None:
    """A next play starting a few seconds early (crossfade) is not an impossible sequence."""
    p = Platform()
    p.add_user("u")
    ms = np.full(30, DURATION_MS)
    starts = np.r_[0, np.cumsum(ms[:-1] - 8_000)]  # each starts 8 s before the previous ends
    p.play("u", np.arange(30), starts, ms)
    result = FraudDetector().detect(p.contract())
    assert not result.stream_flagged.any()
    strict = FraudDetector(FraudSettings(overlap_tolerance_ms=5_000)).detect(p.contract())
    # 29 of 30 plays overlap: the account is flagged, and so is every one of its streams.
    assert set(strict.accounts["main_reason"]) == {"overlap"}
    assert strict.stream_flagged.all()


def test_unsorted_input_and_empty_platform() -> None:
    p = known_platform()
    data = p.contract()
    base = FraudDetector().detect(data)
    perm = np.random.default_rng(0).permutation(len(data.streams))
    data.streams = data.streams.iloc[perm].reset_index(drop=True)
    shuffled = FraudDetector().detect(data)
    # Same reasons per row, except among plays that start at the same instant
    # (user "sim"), where which of them counts as "first" follows the input order.
    tie = np.isin(np.arange(len(perm)), _rows(p, "sim")[-3:])[perm]
    np.testing.assert_array_equal(shuffled.stream_reason[~tie], base.stream_reason[perm][~tie])
    assert (
        shuffled.summary()["flagged_streams_per_reason"]
        == base.summary()["flagged_streams_per_reason"]
    )
    np.testing.assert_array_equal(shuffled.account_reason, base.account_reason)
    data.streams = data.streams.iloc[:0]
    empty = FraudDetector().detect(data)
    assert len(empty.stream_reason) == 0 and empty.accounts.empty
    assert empty.summary()["flagged_streams"] == 0
