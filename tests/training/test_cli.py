"""The ``recsys`` command line, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from training.cli import main


def test_generate_train_recommend(tmp_path: Path, capsys) -> None:
    data, out = tmp_path / "data", tmp_path / "artifacts"
    assert main(["generate", "--out", str(data), "--scale", "tiny", "--seed", "1"]) == 0
    assert (data / "_truth").is_dir() and (data / "streams.parquet").exists()
    assert main(["train", "--data", str(data), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Path(printed["artifact"]) == out

    users = pd.read_parquet(out / "model/users.parquet")["user_id"].head(3).tolist() + ["ghost"]
    (tmp_path / "users.txt").write_text("\n".join(users) + "\n")
    recs = tmp_path / "recs.jsonl"
    args = ["recommend", "--artifact", str(out), "--users", str(tmp_path / "users.txt")]
    assert main([*args, "--k", "5", "--out", str(recs)]) == 0
    lines = [json.loads(x) for x in recs.read_text().splitlines()]
    assert [x["user_id"] for x in lines] == users
    assert all(len(x["items"]) == 5 for x in lines)
    assert all({"track_id", "score"} <= set(i) for x in lines for i in x["items"])
    assert [x["personalized"] for x in lines] == [True, True, True, False]


def test_config_file_and_errors(tmp_path: Path, caplog) -> None:
    data = tmp_path / "data"
    main(["generate", "--out", str(data), "--scale", "tiny"])
    cfg = tmp_path / "c.toml"
    cfg.write_text("[als]\nfactors = 8\niterations = 2\n")
    assert (
        main(["train", "--data", str(data), "--out", str(tmp_path / "a"), "--config", str(cfg)])
        == 0
    )
    manifest = json.loads((tmp_path / "a/manifest.json").read_text())
    assert manifest["training"]["params"]["factors"] == 8
    cfg.write_text("[als]\nfactorz = 8\n")
    assert (
        main(["train", "--data", str(data), "--out", str(tmp_path / "b"), "--config", str(cfg)])
        == 2
    )
    (data / "users.parquet").unlink()
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "c")]) == 2
    assert "required table 'users' is missing" in caplog.text


def test_report_reconciles(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "report"
    main(["generate", "--out", str(data), "--scale", "tiny", "--seed", "2"])
    assert main(["report", "--data", str(data), "--out", str(out), "--since", "2026-08-01"]) == 0
    tracks = pd.read_csv(out / "tracks.csv")
    labels = pd.read_parquet(out / "labels.parquet")
    summary = json.loads((out / "summary.json").read_text())
    reason_cols = [c for c in tracks if c.startswith("excluded_")]
    assert (tracks["counted"] == tracks["eligible"] + tracks[reason_cols].sum(axis=1)).all()
    assert summary["totals"]["counted"] == tracks["counted"].sum() == labels["counted"].sum()
    assert summary["totals"]["excluded"] > 0  # the tiny platform has bots
    # Every excluded stream belongs to an account the ground truth calls a bot.
    truth = pd.read_parquet(data / "_truth/accounts.parquet")
    streams = pd.read_parquet(data / "streams.parquet")
    bot_streams = streams.loc[
        streams["user_id"].isin(truth.loc[truth["kind"] != "genuine", "user_id"])
        & (streams["ms_played"] >= 30_000)
    ]
    assert summary["totals"]["excluded"] <= len(bot_streams)
    assert summary["totals"]["excluded"] >= 0.95 * len(bot_streams)
