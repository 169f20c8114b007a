"""Training configuration: one dataclass per stage, loadable from TOML or JSON.

``recsys train --config FILE`` reads a file with optional sections
``[pool]``, ``[events]``, ``[fraud]``, ``[als]``, ``[retrieval]`` and ``[graph]``; every key overrides
the documented default of the same name, and an unknown key is an error
(a typo must not silently train with the default).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys.errors import ConfigError
from recsys.events import EventRules
from recsys.fraud import FraudSettings
from recsys.graph.config import GraphConfig
from recsys.pool import PoolRules

#: ALS defaults, tuned on the Last.fm data (see docs/als-defaults.md).
DEFAULT_ALS: dict[str, Any] = {
    "factors": 128,
    "regularization": 45.0,
    "alpha": 15.0,
    "iterations": 15,
    "weighting": "log1p_user",
    "random_state": 0,
}


@dataclass(frozen=True)
class RetrievalConfig:
    """FAISS index settings (see :func:`recsys.retrieval.build_index`).

    Parameters
    ----------
    exact_threshold
        Pools smaller than this are searched exactly; larger ones with HNSW.
    hnsw_m, ef_construction, ef_search
        HNSW graph degree and beam widths.
    hnsw_storage
        ``"float16"`` (default) or ``"float32"``: how the HNSW graphs store the
        vectors (see :func:`recsys.retrieval.build_index`). float16 halves the
        indexes' vectors (256 MB less for a 1M x 64 pool) at equal recall; the
        served item factors are then the float16 ones.
    answer_depth_users, answer_depth_artists
        Ids of the user index's answer stored per known user, and of the item
        index's answer per artist (the query of an artist radio without a
        listener), at training time (:mod:`recsys.retrieval.answers`); 0 stores
        none. Requests for up to that many candidates are then answered without
        a graph walk. The artist depth is the default radio's fetch (50 tracks
        x ``radio_fetch_factor`` 2). At most ``ef_search``, so that a shorter
        answer is a prefix of the stored one.
    answer_max_users
        Users whose answer is stored: the ones with most distinct streamed
        tracks; the others search live. Each costs one search at training time:
        about 0.17 ms of wall time on the 2-core machine with a 100K-item pool
        (0.27 ms with 1M items), so 50,000 users add about 9 s to ``recsys
        train`` (the ``large`` platform's 313K users would add 53 s and take
        training past twice the bare fit, docs/training.md).
    """

    exact_threshold: int = 50_000
    hnsw_m: int = 32
    ef_construction: int = 100
    ef_search: int = 128
    hnsw_storage: str = "float16"
    answer_depth_users: int = 50
    answer_depth_artists: int = 100
    answer_max_users: int = 50_000

    def answer_kwargs(self) -> dict[str, int]:
        """Keyword arguments of :func:`recsys.artifact.publish.compute_stored_answers`."""
        return {
            "users_depth": self.answer_depth_users,
            "artists_depth": self.answer_depth_artists,
            "max_users": self.answer_max_users,
        }

    def __post_init__(self) -> None:
        if self.answer_max_users < 0:
            raise ConfigError(f"answer_max_users must be >= 0, got {self.answer_max_users}")
        for name in ("answer_depth_users", "answer_depth_artists"):
            depth = getattr(self, name)
            if not 0 <= depth <= self.ef_search:
                raise ConfigError(f"{name} must be in [0, ef_search={self.ef_search}], got {depth}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``recsys train`` can be told."""

    pool: PoolRules = field(default_factory=PoolRules)
    events: EventRules = field(default_factory=EventRules)
    fraud: FraudSettings = field(default_factory=FraudSettings)
    als: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_ALS))
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool": dataclasses.asdict(self.pool),
            "events": dataclasses.asdict(self.events),
            "fraud": dataclasses.asdict(self.fraud),
            "als": dict(self.als),
            "retrieval": dataclasses.asdict(self.retrieval),
            "graph": dataclasses.asdict(self.graph),
        }


def _override(obj: Any, values: dict[str, Any], section: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(obj)}
    unknown = set(values) - set(names)
    if unknown:
        raise ConfigError(f"[{section}]: unknown setting(s) {sorted(unknown)}")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return dataclasses.replace(obj, **fixed)


def config_from_dict(raw: dict[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from nested dicts, validating the keys."""
    unknown = set(raw) - {"pool", "events", "fraud", "als", "retrieval", "graph"}
    if unknown:
        raise ConfigError(f"unknown config section(s) {sorted(unknown)}")
    base = TrainConfig()
    als = dict(DEFAULT_ALS)
    from recsys.models import ALSModel

    allowed = set(ALSModel().get_params())
    bad = set(raw.get("als", {})) - allowed
    if bad:
        raise ConfigError(f"[als]: unknown setting(s) {sorted(bad)}")
    als.update(raw.get("als", {}))
    return TrainConfig(
        pool=_override(base.pool, raw.get("pool", {}), "pool"),
        events=_override(base.events, raw.get("events", {}), "events"),
        fraud=_override(base.fraud, raw.get("fraud", {}), "fraud"),
        als=als,
        retrieval=_override(base.retrieval, raw.get("retrieval", {}), "retrieval"),
        graph=_override(base.graph, raw.get("graph", {}), "graph"),
    )


def load_config(path: str | Path | None) -> TrainConfig:
    """Read a TOML (``.toml``) or JSON file; ``None`` gives the defaults."""
    if path is None:
        return TrainConfig()
    path = Path(path)
    try:
        text = path.read_text()
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    return config_from_dict(raw)
