"""Split protocols at the contract level, so that the whole engine trains on the split.

- ``random``: a random fifth of each user's distinct tracks held out (users
  with at least ``min_items`` tracks); with ``streams``, every stream of a
  held-out (user, track) pair leaves the training data.
- ``last``: by time (``streams`` only): each user's tracks first heard after
  their personal cut-off (the last ``test_fraction`` of their distinct tracks
  by first listen) are the test set; training keeps only what came before.
- ``users``: a fraction of users held out entirely; their history is split
  into a *query* (what a fold-in sees) and a *test* part.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.errors import ContractError
from recsys.evaluation.splits import holdout_frame

logger = logging.getLogger(__name__)

PROTOCOLS = ("random", "last", "users")


@dataclass
class ContractSplit:
    """A training contract directory and the held-out pairs.

    ``test`` has ``user_id``, ``track_id``; ``query`` (``users`` protocol
    only) has the held-out users' known pairs with ``plays``.
    """

    protocol: str
    seed: int
    train_dir: Path
    test: pd.DataFrame
    query: pd.DataFrame | None = None


def read_table(directory: Path, name: str) -> pd.DataFrame | None:
    """Table ``name`` of a contract directory as stored (Parquet or CSV); ``None`` if absent."""
    for suffix, reader in ((".parquet", pd.read_parquet), (".csv", pd.read_csv)):
        p = directory / f"{name}{suffix}"
        if p.exists():
            return reader(p)
    return None


def _write_train(src: Path, out: Path, table: str, frame: pd.DataFrame) -> None:
    if out.exists():
        shutil.rmtree(out)
    ignore = shutil.ignore_patterns(f"{table}.parquet", f"{table}.csv", "_truth")
    shutil.copytree(src, out, ignore=ignore)
    frame.to_parquet(out / f"{table}.parquet", index=False)


def _pairs(events: pd.DataFrame, table: str) -> pd.DataFrame:
    """Distinct (user, track) pairs with their play counts."""
    if table == "plays":
        return events[["user_id", "track_id", "plays"]]
    return (
        events.groupby(["user_id", "track_id"], as_index=False)
        .size()
        .rename(columns={"size": "plays"})
    )


def split_contract_protocol(
    data_dir: str | Path,
    out_dir: str | Path,
    protocol: str = "random",
    *,
    test_fraction: float = 0.2,
    min_items: int = 5,
    user_fraction: float = 0.1,
    random_state: int = 0,
) -> ContractSplit:
    """Write the training part of a contract directory and return the held-out pairs.

    Parameters
    ----------
    data_dir
        Contract directory (``streams`` or ``plays``).
    out_dir
        Where the training contract directory goes (replaced).
    protocol
        ``random``, ``last`` or ``users``.
    """
    src, out = Path(data_dir), Path(out_dir)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: one of {PROTOCOLS}")
    table = "streams" if read_table(src, "streams") is not None else "plays"
    events = read_table(src, table)
    assert events is not None
    rng = np.random.default_rng(random_state)

    if protocol == "random":
        pairs = _pairs(events, table)
        _, test = holdout_frame(
            pairs,
            "user_id",
            "track_id",
            test_fraction=test_fraction,
            min_items=min_items,
            random_state=random_state,
        )
        key = pd.MultiIndex.from_frame(test[["user_id", "track_id"]])
        held = pd.MultiIndex.from_frame(events[["user_id", "track_id"]]).isin(key)
        _write_train(src, out, table, events.loc[~held])
        return ContractSplit(
            protocol, random_state, out, test[["user_id", "track_id"]].reset_index(drop=True)
        )

    if protocol == "last":
        if table != "streams":
            raise ContractError("the 'last' protocol needs timestamps: a streams table")
        ts = pd.to_datetime(events["ts"], utc=True)
        first = (
            events.assign(ts=ts)
            .groupby(["user_id", "track_id"], as_index=False)["ts"]
            .min()
            .sort_values(["user_id", "ts"], kind="stable")
        )
        n = first.groupby("user_id")["track_id"].transform("size")
        rank = first.groupby("user_id").cumcount()
        n_test = np.where(n >= min_items, np.maximum(1, np.round(n * test_fraction)), 0)
        is_test = rank >= n - n_test
        cutoff = first.loc[is_test].groupby("user_id")["ts"].min()
        user_cut = events["user_id"].map(cutoff)
        keep = user_cut.isna() | (ts < pd.to_datetime(user_cut, utc=True))
        _write_train(src, out, table, events.loc[keep.to_numpy()])
        test = first.loc[is_test, ["user_id", "track_id"]].reset_index(drop=True)
        return ContractSplit(protocol, random_state, out, test)

    pairs = _pairs(events, table)
    counts = pairs.groupby("user_id").size()
    eligible = counts.index[counts >= min_items].to_numpy()
    n_out = max(1, round(user_fraction * len(eligible)))
    held_users = set(rng.choice(eligible, size=n_out, replace=False))
    mask = events["user_id"].isin(held_users).to_numpy()
    _write_train(src, out, table, events.loc[~mask])
    held_pairs = pairs.loc[pairs["user_id"].isin(held_users)]
    query, test = holdout_frame(
        held_pairs,
        "user_id",
        "track_id",
        test_fraction=test_fraction,
        min_items=min_items,
        random_state=random_state,
    )
    return ContractSplit(
        protocol,
        random_state,
        out,
        test[["user_id", "track_id"]].reset_index(drop=True),
        query.reset_index(drop=True),
    )
