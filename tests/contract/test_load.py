from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from recsys.contract.load import check_directory, load_contract
from recsys.errors import ContractError, MissingColumn, MissingTable
from tests.helpers import minimal_tables, write_tables


def _write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text).lstrip())


@pytest.fixture()
def broken_dir(tmp_path: Path) -> Path:
    """A CSV contract directory with exactly one known problem per bad row."""
    d = tmp_path / "broken"
    d.mkdir()
    _write(
        d / "labels.csv",
        """
        label_id,name,status
        l1,Good,verified
        l2,Partner,trusted_partner
        l3,Bad,weird
        """,
    )
    _write(
        d / "artists.csv",
        """
        artist_id,name,label_id,verified,unknown_extra
        a1,A1,l1,true,x
        a2,A2,l2,1,x
        a3,A3,l3,true,x
        a4,A4,l1,maybe,x
        ,A6,l1,true,x
        """,
    )
    _write(
        d / "tracks.csv",
        """
        track_id,artist_id,title,release_date,duration_ms,ai_disclosure,ai_score,status
        t1,a1,T1,2024-01-01,200000,none,,active
        t2,a1,T2,2024-02-01,-5,none,0.1,active
        t3,a2,T3,not-a-date,200000,none,0.2,active
        t4,a2,T4,2024-03-01,200000,generated,0.9,active
        t5,a3,T5,2024-03-01,200000,none,,active
        t1,a1,dup,2024-01-01,200000,none,,active
        t7,a2,T7,,150000,assisted,1.5,active
        t8,a2,T8,2024-03-01,150000,none,0.2,gone
        """,
    )
    _write(
        d / "users.csv",
        """
        user_id,personalization_consent,created_at
        u1,true,2024-01-01T00:00:00Z
        u2,false,2024-01-02
        u3,true,garbage
        """,
    )
    _write(
        d / "streams.csv",
        """
        user_id,track_id,ts,ms_played
        u1,t1,2024-05-01T10:00:00Z,200000
        u1,t4,2024-05-01T10:05:00Z,200000
        u2,t1,2024-05-01T10:00:00Z,10000
        u9,t1,2024-05-01T10:00:00Z,10000
        u1,t9,2024-05-01T10:00:00Z,10000
        u1,t1,yesterday,10000
        u1,t1,2024-05-01T11:00:00Z,-1
        u1,t1,2024-05-01T11:00:00Z,
        """,
    )
    _write(
        d / "editorial_seeds.csv",
        """
        artist_id,similar_artist_id,editor,created_at
        a1,a2,ed,2024-01-01
        a1,a9,ed,2024-01-01
        """,
    )
    return d


EXPECTED = {
    "labels": {2: "bad_enum:status"},
    "artists": {
        2: "unknown_reference:label_id",
        3: "bad_type:verified",
        4: "missing_value:artist_id",
    },
    "tracks": {
        1: "out_of_range:duration_ms",
        2: "bad_type:release_date",
        4: "unknown_reference:artist_id",
        5: "duplicate_key",
        6: "out_of_range:ai_score",
        7: "bad_enum:status",
    },
    "users": {2: "bad_type:created_at"},
    "streams": {
        3: "unknown_reference:user_id",
        4: "unknown_reference:track_id",
        5: "bad_type:ts",
        6: "out_of_range:ms_played",
        7: "missing_value:ms_played",
    },
    "editorial_seeds": {1: "unknown_reference:similar_artist_id"},
}


def test_bad_rows_are_quarantined_exactly_with_reasons(broken_dir: Path) -> None:
    data = load_contract(broken_dir)
    got = {
        t: dict(zip(f["row"], f["reason"], strict=True)) for t, f in data.quarantine.frames.items()
    }
    assert got == EXPECTED
    # Kept rows are exactly the others.
    assert list(data.labels["label_id"]) == ["l1", "l2"]
    assert list(data.artists["artist_id"]) == ["a1", "a2"]
    assert list(data.tracks["track_id"]) == ["t1", "t4"]
    assert list(data.users["user_id"]) == ["u1", "u2"]
    assert len(data.streams) == 3
    assert data.input_rows["streams"] == 8
    assert data.quarantine.total == sum(len(v) for v in EXPECTED.values())


def test_quarantine_keeps_raw_values(broken_dir: Path, tmp_path: Path) -> None:
    data = load_contract(broken_dir)
    paths = data.quarantine.write(tmp_path / "q")
    streams = pd.read_parquet(tmp_path / "q/streams.parquet")
    assert {p.name for p in paths} == {f"{t}.parquet" for t in EXPECTED}
    assert streams.loc[streams["row"] == 5, "ts"].item() == "yesterday"
    assert streams.loc[streams["row"] == 3, "user_id"].item() == "u9"


def test_types_and_positions(tmp_path: Path) -> None:
    d = write_tables(tmp_path / "ok", minimal_tables())
    data = load_contract(d)
    assert data.quarantine.total == 0
    s = data.streams
    assert str(s["ts"].dtype) == "datetime64[ns, UTC]"
    assert s["user_idx"].dtype.kind == "i" and s["track_idx"].dtype.kind == "i"
    users = data.users["user_id"].to_numpy()[s["user_idx"]]
    tracks = data.tracks["track_id"].to_numpy()[s["track_idx"]]
    raw = minimal_tables()["streams"]
    assert list(users) == list(raw["user_id"]) and list(tracks) == list(raw["track_id"])
    assert data.tracks["ai_score"].isna().sum() == 1
    assert data.users["personalization_consent"].dtype == bool
    assert data.event_table == "streams"
    assert data.data_window()["start"].startswith("2026-10-01")


def test_csv_and_parquet_agree(tmp_path: Path) -> None:
    a = load_contract(write_tables(tmp_path / "p", minimal_tables(), "parquet"))
    b = load_contract(write_tables(tmp_path / "c", minimal_tables(), "csv"))
    pd.testing.assert_frame_equal(a.streams, b.streams)
    assert list(a.tracks["track_id"]) == list(b.tracks["track_id"])


def test_missing_table_is_named(tmp_path: Path) -> None:
    tables = minimal_tables()
    del tables["users"]
    with pytest.raises(MissingTable, match="'users'"):
        load_contract(write_tables(tmp_path / "d", tables))


def test_missing_column_is_named(tmp_path: Path) -> None:
    tables = minimal_tables()
    tables["tracks"] = tables["tracks"].drop(columns=["ai_score"])
    with pytest.raises(MissingColumn, match="'tracks'.*'ai_score'"):
        check_directory(write_tables(tmp_path / "d", tables))


def test_exactly_one_event_table(tmp_path: Path) -> None:
    tables = minimal_tables()
    tables["plays"] = pd.DataFrame({"user_id": ["u1"], "track_id": ["t1"], "plays": [3]})
    with pytest.raises(ContractError, match="exactly one"):
        load_contract(write_tables(tmp_path / "both", tables))
    del tables["plays"], tables["streams"]
    with pytest.raises(ContractError, match="neither"):
        load_contract(write_tables(tmp_path / "none", tables))


def test_plays_table(tmp_path: Path) -> None:
    tables = minimal_tables()
    del tables["streams"]
    tables["plays"] = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u1"],
            "track_id": ["t1", "t2", "t1", "t1"],
            "plays": [3, 0, 2, 5],
        }
    )
    data = load_contract(write_tables(tmp_path / "d", tables))
    assert data.event_table == "plays"
    assert list(data.plays["plays"]) == [3, 2]
    reasons = dict(
        zip(
            data.quarantine.frames["plays"]["row"],
            data.quarantine.frames["plays"]["reason"],
            strict=True,
        )
    )
    assert reasons == {1: "out_of_range:plays", 3: "duplicate_key"}
