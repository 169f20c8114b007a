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


class _Exec(Exception):
    """Raised by the fake ``os.execve`` so that ``serve`` stops where it would restart."""


def _fake_execve(calls: list):
    def execve(path, argv, env):
        calls.append((path, argv, env))
        raise _Exec

    return execve


def test_serve_restarts_once_with_huge_pages(monkeypatch) -> None:
    import os
    import sys

    import pytest

    import training.cli as cli

    calls: list = []
    monkeypatch.setattr(cli.os, "execve", _fake_execve(calls))
    monkeypatch.setattr(cli, "_huge_pages_available", lambda: True)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    monkeypatch.setenv("RECSYS_HUGE_PAGES", "true")
    argv = ["serve", "--artifact", "/nowhere", "--port", "8123"]
    with pytest.raises(_Exec):
        main(argv)
    ((path, new_argv, env),) = calls
    assert path == sys.executable
    assert new_argv == [sys.executable, "-m", "training.cli", *argv]
    # Other tunables are kept; the rest of the environment is passed on.
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert env["PATH"] == os.environ["PATH"]


def test_serve_does_not_restart_by_default_when_set_off_or_unavailable(monkeypatch) -> None:
    import training.cli as cli

    calls: list = []
    monkeypatch.setattr(cli.os, "execve", _fake_execve(calls))
    started: list = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: started.append(kw["port"]))
    monkeypatch.setenv("RECSYS_STATE_PATH", "/nowhere/state.sqlite")
    argv = ["serve", "--artifact", "/nowhere", "--port", "8123"]

    monkeypatch.setattr(cli, "_huge_pages_available", lambda: True)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("RECSYS_HUGE_PAGES", raising=False)  # off by default
    assert main(argv) == 0
    monkeypatch.setenv("RECSYS_HUGE_PAGES", "true")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")  # the restarted process
    assert main(argv) == 0
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv("RECSYS_HUGE_PAGES", "false")  # switched off
    assert main(argv) == 0
    monkeypatch.setenv("RECSYS_HUGE_PAGES", "true")
    monkeypatch.setattr(cli, "_huge_pages_available", lambda: False)  # THP "never" or not Linux
    assert main(argv) == 0
    assert calls == [] and started == [8123, 8123, 8123, 8123]
