from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.contract.load import load_contract
from recsys.report import stream_report
from tests.helpers import minimal_tables, write_tables


def _data(tmp_path: Path):
    return load_contract(write_tables(tmp_path / "d", minimal_tables()))


def test_known_answer(tmp_path: Path) -> None:
    data = _data(tmp_path)
    # streams: u1-t1, u1-t3, u2-t1, u2-t2 (10 s: not a stream), u3-t1, u1-t5
    reason = np.array([0, 2, 1, 1, 0, 0])
    rep = stream_report(data, reason, ("account:loop", "burst"))
    t = rep.tracks.set_index("track_id")
    assert t.loc["t1", ["counted", "eligible", "excluded"]].tolist() == [3, 2, 1]
    assert t.loc["t1", "excluded_account_loop"] == 1
    assert t.loc["t3", ["counted", "eligible", "excluded_burst"]].tolist() == [1, 0, 1]
    assert "t2" not in t.index  # a 10 s play is not a stream
    a = rep.artists.set_index("artist_id")
    assert a.loc["a1", "counted"] == 3 and a.loc["a2", "counted"] == 1
    lab = rep.labels.set_index("label_id")
    assert lab.loc["l1", "counted"] == 4 and lab.loc["l2", "counted"] == 1
    assert rep.totals() == {
        "counted": 5,
        "eligible": 3,
        "excluded": 2,
        "excluded_by_reason": {"account_loop": 1, "burst": 1},
    }


def test_period_is_inclusive_by_day(tmp_path: Path) -> None:
    data = _data(tmp_path)
    day = dt.date(2026, 10, 1)
    assert stream_report(data, since=day, until=day).totals()["counted"] == 5
    assert stream_report(data, since=day + dt.timedelta(days=1)).totals()["counted"] == 0
    assert stream_report(data, until=day - dt.timedelta(days=1)).totals()["counted"] == 0


def test_written_files_agree(tmp_path: Path) -> None:
    data = _data(tmp_path)
    rep = stream_report(data, np.array([0, 0, 1, 0, 0, 0]), ("farm",))
    paths = rep.write(tmp_path / "out")
    assert {p.name for p in paths} >= {"tracks.csv", "tracks.parquet", "labels.csv", "summary.json"}
    csv = pd.read_csv(tmp_path / "out/artists.csv")
    pq = pd.read_parquet(tmp_path / "out/artists.parquet")
    assert csv["counted"].tolist() == pq["counted"].tolist()
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["totals"]["excluded_by_reason"] == {"farm": 1}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.integers(0, 3), min_size=6, max_size=6),
    st.lists(st.integers(0, 400_000), min_size=6, max_size=6),
)
def test_totals_reconcile_at_every_level(tmp_path: Path, reasons: list[int], ms: list[int]) -> None:
    tables = minimal_tables()
    tables["streams"]["ms_played"] = ms
    data = load_contract(write_tables(tmp_path / "d", tables))
    rep = stream_report(data, np.array(reasons), ("a", "b", "c"))
    for frame in (rep.tracks, rep.artists, rep.labels):
        per_reason = frame[[c for c in frame if c.startswith("excluded_")]].sum(axis=1)
        assert (frame["counted"] == frame["eligible"] + frame["excluded"]).all()
        assert (frame["excluded"] == per_reason).all()
        assert (frame["eligible"] >= 0).all()
    assert (
        rep.tracks["counted"].sum() == rep.labels["counted"].sum() == sum(m >= 30_000 for m in ms)
    )
