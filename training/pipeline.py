"""Offline training entry point: settings from files, the pipeline from the library."""

from __future__ import annotations

from pathlib import Path

from recsys.config import load_config
from recsys.pipeline import TrainResult, train


def run_training(
    data: str | Path,
    out: str | Path,
    *,
    config_path: str | Path | None = None,
    show_progress: bool = False,
) -> TrainResult:
    """Train from a contract directory into an artifact, with the config file's settings."""
    return train(data, out, load_config(config_path), show_progress=show_progress)
