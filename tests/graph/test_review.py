"""Human review round trip: export learned relations, import decisions, retrain."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recsys.graph.review import REVIEW_LOG, ReviewError, import_review
from recsys.pipeline import train
from recsys.synth import generate_platform
from training.cli import main


def _pairs(frame: pd.DataFrame) -> set[frozenset[str]]:
    return {frozenset(p) for p in zip(frame["artist_id"], frame["similar_artist_id"], strict=True)}


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> tuple[Path, Path]:
    data = generate_platform(tmp_path_factory.mktemp("r") / "data", scale="tiny", seed=7).out_dir
    return data, train(data, tmp_path_factory.mktemp("a") / "art").path


def test_review_round_trip(platform, tmp_path: Path) -> None:
    data, art = platform
    out = tmp_path / "review.csv"
    assert main(["review", "export", "--artifact", str(art), "--out", str(out), "--n", "7"]) == 0
    rows = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(rows) == 7 and (rows["decision"] == "").all()
    assert {"shared_listeners", "vector_similarity", "similar_artist_seed_distance"} <= set(rows)
    assert len(_pairs(rows)) == 7  # one row per undirected pair
    rows.loc[:2, ["decision", "editor", "decided_at"]] = [
        "approve",
        "alice",
        "2026-11-02T10:00:00Z",
    ]
    rows.loc[3:5, ["decision", "editor"]] = ["Reject", "bob"]  # no time: import time
    rows.to_csv(out, index=False)
    assert main(["review", "import", str(out), "--data", str(data)]) == 0

    approved, refused = _pairs(rows.loc[:2]), _pairs(rows.loc[3:5])
    seeds = pd.read_parquet(data / "editorial_seeds.parquet")
    rej = pd.read_parquet(data / "editorial_rejections.parquet")
    new_seeds = seeds.loc[seeds["editor"] == "alice"]
    assert _pairs(new_seeds) == approved
    assert (new_seeds["created_at"] == pd.Timestamp("2026-11-02T10:00:00Z")).all()
    assert _pairs(rej.loc[rej["editor"] == "bob"]) == refused
    assert rej.loc[rej["editor"] == "bob", "created_at"].notna().all()
    log = pd.read_parquet(data / REVIEW_LOG)
    assert sorted(log["decision"]) == ["approve"] * 3 + ["reject"] * 3

    # The next training: approved relations are seeds of provenance "learned, reviewed",
    # ranked with the editorial ones; refused ones never appear.
    art2 = train(data, tmp_path / "art2").path
    rel = pd.read_parquet(art2 / "graph/relations.parquet")
    for pair in approved:
        a, b = sorted(pair)
        for x, y in ((a, b), (b, a)):
            mine = rel.loc[rel["artist_id"] == x]
            row = mine.loc[mine["similar_artist_id"] == y]
            assert row["provenance"].tolist() == ["learned, reviewed"]
            learned = mine.loc[mine["provenance"] == "learned", "rank"]
            assert not len(learned) or row["rank"].iloc[0] < learned.min()
    assert not _pairs(rel) & refused
    # Decided pairs are not suggested again.
    again = tmp_path / "again.csv"
    assert main(["review", "export", "--artifact", str(art2), "--out", str(again)]) == 0
    assert not _pairs(pd.read_csv(again)) & (approved | refused)


def test_bad_review_files_change_nothing(platform, tmp_path: Path) -> None:
    data, art = platform
    before = (data / "editorial_seeds.parquet").read_bytes()
    bad = tmp_path / "bad.csv"
    base = {"artist_id": ["a000001"], "similar_artist_id": ["a000002"], "editor": ["x"]}
    for decision, editor in (("maybe", "x"), ("approve", "")):
        pd.DataFrame({**base, "decision": [decision], "editor": [editor]}).to_csv(bad, index=False)
        with pytest.raises(ReviewError):
            import_review(bad, data)
    pd.DataFrame({**base, "decision": ["approve"], "similar_artist_id": ["nobody"]}).to_csv(
        bad, index=False
    )
    with pytest.raises(ReviewError):
        import_review(bad, data)
    assert main(["review", "import", str(bad), "--data", str(data)]) == 2
    assert (data / "editorial_seeds.parquet").read_bytes() == before
