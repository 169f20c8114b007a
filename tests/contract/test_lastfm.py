"""Conversion of the Last.fm HetRec files to the data contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.contract.lastfm import (
    LABEL_ID,
    SEED_EDITOR,
    convert_lastfm,
    derive_tag_seeds,
    read_hetrec_table,
)
from recsys.contract.schema import TABLES

#: The real data, beside the repository (``../shared/data`` from the repo root).
LASTFM_DIR = Path(__file__).resolve().parents[2].parent / "shared/data/lastfm-hetrec2011-2k"

WRITTEN = ("labels", "artists", "tracks", "users", "plays", "artist_tags", "editorial_seeds")


def _write_dat(path: Path, lines: list[str], *, encoding: str = "utf-8", eol: str = "\r\n") -> None:
    path.write_bytes(eol.join(lines).encode(encoding) + eol.encode())


@pytest.fixture()
def hetrec_dir(tmp_path: Path) -> Path:
    """A 3-user HetRec directory with the real files' quirks.

    CRLF line ends and a trailing lone CR line, ``artists.dat`` in UTF-8 with
    LF ends and a quoted name, ``tags.dat`` in ISO-8859-1, an artist with
    plays but no ``artists.dat`` row (99) and a tag on an artist that is in
    neither file (77).
    """
    d = tmp_path / "hetrec"
    d.mkdir()
    _write_dat(
        d / "artists.dat",
        [
            "id\tname\turl\tpictureURL",
            "1\tMötley Crüe\thttp://x/1\thttp://p/1",
            '2\t"Weird Al" Yankovic\thttp://x/2\t',
            "3\tAbba\thttp://x/3\thttp://p/3",
            "4\tNA\thttp://x/4\thttp://p/4",
        ],
        eol="\n",
    )
    _write_dat(
        d / "user_artists.dat",
        ["userID\tartistID\tweight", "2\t1\t100", "2\t2\t5", "3\t1\t7", "3\t3\t1", "5\t99\t3"],
    )
    (d / "user_artists.dat").write_bytes((d / "user_artists.dat").read_bytes() + b"\r\n")
    _write_dat(
        d / "tags.dat",
        ["tagID\ttagValue", "1\tmetal", "2\trock français", "3\tpop"],
        encoding="iso-8859-1",
    )
    _write_dat(
        d / "user_taggedartists.dat",
        [
            "userID\tartistID\ttagID\tday\tmonth\tyear",
            # artists 1 and 2 share the profile {metal: 2, rock français: 1}
            "2\t1\t1\t1\t1\t2009",
            "3\t1\t1\t1\t1\t2009",
            "3\t1\t2\t1\t1\t2009",
            "2\t2\t1\t1\t1\t2009",
            "3\t2\t1\t1\t1\t2009",
            "5\t2\t2\t1\t1\t2009",
            "5\t2\t2\t2\t1\t2009",  # same user, same tag, another day: still one vote
            # artist 3 is pop only: no seed with 1 or 2
            "2\t3\t3\t1\t1\t2009",
            "3\t3\t3\t1\t1\t2009",
            "5\t3\t3\t1\t1\t2009",
            # artist 77 exists nowhere else: dropped
            "2\t77\t1\t1\t1\t2009",
        ],
    )
    return d


def _read(out: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(out / f"{name}.parquet")


def _check_contract(out: Path) -> dict[str, pd.DataFrame]:
    """Columns in contract order, unique keys and resolvable foreign keys."""
    frames = {name: _read(out, name) for name in WRITTEN}
    for name, df in frames.items():
        table = TABLES[name]
        assert tuple(df.columns) == table.column_names, name
        if table.key:
            assert not df.duplicated(list(table.key)).any(), name
        for fk in table.foreign_keys:
            ref = set(frames[fk.ref_table][fk.ref_column])
            assert df[fk.column].isin(ref).all(), (name, fk.column)
    return frames


def test_read_hetrec_table_handles_quotes_crlf_and_latin1(hetrec_dir: Path) -> None:
    artists = read_hetrec_table(hetrec_dir, "artists")
    assert artists["name"].tolist() == ["Mötley Crüe", '"Weird Al" Yankovic', "Abba", "NA"]
    tags = read_hetrec_table(hetrec_dir, "tags")
    assert tags["tagValue"].tolist() == ["metal", "rock français", "pop"]
    ua = read_hetrec_table(hetrec_dir, "user_artists")
    assert len(ua) == 5 and ua["weight"].dtype == np.int64


def test_read_hetrec_table_rejects_malformed_rows(tmp_path: Path) -> None:
    _write_dat(tmp_path / "user_artists.dat", ["userID\tartistID\tweight", "2\t1"])
    with pytest.raises(ValueError, match=r"user_artists.dat:2"):
        read_hetrec_table(tmp_path, "user_artists")
    _write_dat(tmp_path / "user_artists.dat", ["user\tartist\tweight", "2\t1\t3"])
    with pytest.raises(ValueError, match="header"):
        read_hetrec_table(tmp_path, "user_artists")


def test_convert_fake_hetrec(hetrec_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "contract"
    counts = convert_lastfm(hetrec_dir, out, seeds_per_artist=3)
    f = _check_contract(out)
    assert counts == {name: len(f[name]) for name in WRITTEN}

    assert f["labels"].to_dict("records") == [
        {"label_id": LABEL_ID, "name": "Last.fm HetRec 2011 (all artists)", "status": "verified"}
    ]
    # 4 artists of artists.dat + artist 99 that only has plays; 77 (tags only) is not added.
    assert f["artists"]["artist_id"].tolist() == ["a1", "a2", "a3", "a4", "a99"]
    assert f["artists"]["verified"].all()
    assert (f["artists"]["label_id"] == LABEL_ID).all()
    assert f["artists"]["name"].iloc[3] == "NA"  # a name, not a missing value
    assert pd.isna(f["artists"]["name"].iloc[4])

    tracks = f["tracks"]
    assert tracks["track_id"].tolist() == ["t1", "t2", "t3", "t4", "t99"]
    assert tracks["artist_id"].tolist() == f["artists"]["artist_id"].tolist()
    assert tracks["title"].iloc[1] == '"Weird Al" Yankovic'
    assert (tracks["duration_ms"] == 240_000).all()
    assert (tracks["ai_disclosure"] == "none").all() and (tracks["status"] == "active").all()
    assert tracks["ai_score"].isna().all() and tracks["release_date"].isna().all()

    users = f["users"]
    assert users["user_id"].tolist() == ["u2", "u3", "u5"]
    assert users["personalization_consent"].all() and users["created_at"].isna().all()

    plays = f["plays"].sort_values(["user_id", "track_id"], ignore_index=True)
    assert plays.to_dict("list") == {
        "user_id": ["u2", "u2", "u3", "u3", "u5"],
        "track_id": ["t1", "t2", "t1", "t3", "t99"],
        "plays": [100, 5, 7, 1, 3],
    }

    tags = f["artist_tags"].set_index(["artist_id", "tag"])["weight"].to_dict()
    assert tags == {
        ("a1", "metal"): 2.0,
        ("a1", "rock français"): 1.0,
        ("a2", "metal"): 2.0,
        ("a2", "rock français"): 1.0,
        ("a3", "pop"): 3.0,
    }

    # Total tag weights are 3, 3, 3 (>= 2); a1 ~ a2 at cosine 1, a3 shares no tag.
    # With the default evidence threshold (5) nobody qualifies.
    assert counts["editorial_seeds"] == 0
    convert_lastfm(hetrec_dir, out, min_tag_weight=2)
    seeds = _read(out, "editorial_seeds")
    assert seeds[["artist_id", "similar_artist_id"]].values.tolist() == [["a1", "a2"]]
    assert (seeds["editor"] == SEED_EDITOR).all() and seeds["created_at"].isna().all()


def test_derive_tag_seeds_top_k_threshold_and_symmetry() -> None:
    tags = pd.DataFrame(
        {
            "artist_id": ["a1", "a1", "a2", "a2", "a3", "a3", "a4"],
            "tag": ["x", "y", "x", "y", "x", "z", "z"],
            "weight": [3.0, 1.0, 3.0, 1.0, 3.0, 3.0, 5.0],
        }
    )
    # a1 . a2 = 1; a1 . a3 = 9 / (sqrt(10) sqrt(18)) = 0.67; a3 . a4 = 0.71; a1 . a4 = 0.
    pairs = derive_tag_seeds(tags, seeds_per_artist=1, min_tag_weight=1, min_similarity=0.5)
    got = {(a, b): s for a, b, s in pairs.itertuples(index=False)}
    # top-1 of a1 and a2 is each other (one undirected pair), of a3 and a4 each other.
    assert set(got) == {("a1", "a2"), ("a3", "a4")}
    assert got[("a3", "a4")] == pytest.approx(3 / np.sqrt(18))
    pairs2 = derive_tag_seeds(tags, seeds_per_artist=2, min_tag_weight=1, min_similarity=0.7)
    assert set(map(tuple, pairs2[["artist_id", "similar_artist_id"]].values)) == {
        ("a1", "a2"),
        ("a3", "a4"),
    }
    pairs3 = derive_tag_seeds(tags, seeds_per_artist=2, min_tag_weight=1, min_similarity=0.5)
    assert ("a1", "a3") in set(map(tuple, pairs3[["artist_id", "similar_artist_id"]].values))
    # Evidence threshold: totals are 4, 4, 6, 5; at 5 only a3 ~ a4 remains, at 6 nothing.
    at5 = derive_tag_seeds(tags, min_tag_weight=5, min_similarity=0.5)
    assert at5[["artist_id", "similar_artist_id"]].values.tolist() == [["a3", "a4"]]
    assert derive_tag_seeds(tags, min_tag_weight=6).empty


@pytest.mark.lastfm
@pytest.mark.skipif(not LASTFM_DIR.is_dir(), reason=f"Last.fm data not found at {LASTFM_DIR}")
def test_convert_real_lastfm(tmp_path: Path) -> None:
    out = tmp_path / "lastfm"
    counts = convert_lastfm(LASTFM_DIR, out)
    f = _check_contract(out)
    # Figures from the data set's README: 1,892 users, 17,632 artists, 92,834 pairs.
    assert counts["labels"] == 1
    assert counts["artists"] == counts["tracks"] == 17_632
    assert counts["users"] == 1_892
    assert counts["plays"] == 92_834
    ua = read_hetrec_table(LASTFM_DIR, "user_artists")
    assert f["plays"]["plays"].sum() == ua["weight"].sum()
    # Tag assignments on the 278 artists absent from artists.dat are dropped.
    assert 60_000 < counts["artist_tags"] < 108_469
    assert "tropicália" in set(f["artist_tags"]["tag"])  # ISO-8859-1 decoded
    seeds = f["editorial_seeds"]
    assert counts["editorial_seeds"] > 1_000
    assert (seeds["artist_id"] < seeds["similar_artist_id"]).all()
