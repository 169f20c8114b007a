"""Offline training entry point: settings from files and the environment, the pipeline from the library."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from recsys.config import load_config
from recsys.pipeline import TrainResult, train
from recsys.state import StateStore

logger = logging.getLogger(__name__)

#: Environment variable naming the SQLite state file shared with the server.
STATE_ENV = "RECSYS_STATE_PATH"


def run_training(
    data: str | Path,
    out: str | Path,
    *,
    config_path: str | Path | None = None,
    state_path: str | Path | None = None,
    show_progress: bool = False,
) -> TrainResult:
    """Train from a contract directory into an artifact.

    Parameters
    ----------
    config_path
        TOML or JSON stage settings.
    state_path
        The server's SQLite state file; defaults to ``$RECSYS_STATE_PATH``.
        Its takedowns leave the pool and its erased users' data is left out.
    """
    state_path = state_path or os.environ.get(STATE_ENV) or None
    takedowns, erased = None, frozenset()
    if state_path:
        snap = StateStore(state_path).snapshot()
        takedowns, erased = snap.takedowns, snap.erased_users
        logger.info(
            "state %s: %d track / %d artist / %d label takedowns, %d erased users",
            state_path,
            len(takedowns.track_ids),
            len(takedowns.artist_ids),
            len(takedowns.label_ids),
            len(erased),
        )
    return train(
        data,
        out,
        load_config(config_path),
        takedowns=takedowns,
        erased_user_ids=erased,
        show_progress=show_progress,
    )
