"""The platform data contract as data: tables, columns, keys and foreign keys.

This module is the single place that knows the contract in
``shared/spec/data-contract.md``. The loader, the synthetic generator and the
tests all read it from here, so a change to the contract is a change to one
table of definitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnKind = Literal["id", "str", "bool", "date", "timestamp", "int", "float", "enum"]


@dataclass(frozen=True)
class Column:
    """One column of a contract table.

    Parameters
    ----------
    name
        Column name as it appears in the file header.
    kind
        Logical type: ``id`` (string identifier), ``str``, ``bool``, ``date``,
        ``timestamp`` (UTC), ``int``, ``float`` or ``enum``.
    nullable
        Whether a missing value is allowed. Keys are never nullable.
    values
        Allowed values for ``enum`` columns.
    min_value, max_value
        Inclusive bounds for numeric columns (``None``: unbounded).
    """

    name: str
    kind: ColumnKind
    nullable: bool = False
    values: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None


@dataclass(frozen=True)
class ForeignKey:
    """``column`` of this table must name an existing ``ref_table.ref_column``."""

    column: str
    ref_table: str
    ref_column: str
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    """One contract table.

    ``key`` lists the columns whose combination must be unique (empty: no key,
    e.g. ``streams`` where repeated plays are legitimate).
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    required: bool = True
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


LABEL_STATUSES = ("verified", "trusted_partner", "unverified", "blocked")
AI_DISCLOSURES = ("none", "assisted", "generated")
TRACK_STATUSES = ("active", "taken_down")
OPT_OUT_ENTITY_TYPES = ("artist", "label")

#: Shortest play that counts as a stream (the contract's 30 s rule).
MIN_STREAM_MS = 30_000

LABELS = Table(
    "labels",
    (
        Column("label_id", "id"),
        Column("name", "str", nullable=True),
        Column("status", "enum", values=LABEL_STATUSES),
    ),
    key=("label_id",),
)

ARTISTS = Table(
    "artists",
    (
        Column("artist_id", "id"),
        Column("name", "str", nullable=True),
        Column("label_id", "id"),
        Column("verified", "bool"),
    ),
    key=("artist_id",),
    foreign_keys=(ForeignKey("label_id", "labels", "label_id"),),
)

TRACKS = Table(
    "tracks",
    (
        Column("track_id", "id"),
        Column("artist_id", "id"),
        Column("title", "str", nullable=True),
        Column("release_date", "date", nullable=True),
        Column("duration_ms", "int", min_value=1),
        Column("ai_disclosure", "enum", values=AI_DISCLOSURES),
        Column("ai_score", "float", nullable=True, min_value=0.0, max_value=1.0),
        Column("status", "enum", values=TRACK_STATUSES),
    ),
    key=("track_id",),
    foreign_keys=(ForeignKey("artist_id", "artists", "artist_id"),),
)

USERS = Table(
    "users",
    (
        Column("user_id", "id"),
        Column("personalization_consent", "bool"),
        Column("created_at", "timestamp", nullable=True),
    ),
    key=("user_id",),
)

STREAMS = Table(
    "streams",
    (
        Column("user_id", "id"),
        Column("track_id", "id"),
        Column("ts", "timestamp"),
        Column("ms_played", "int", min_value=0),
    ),
    foreign_keys=(
        ForeignKey("user_id", "users", "user_id"),
        ForeignKey("track_id", "tracks", "track_id"),
    ),
    required=False,
)

PLAYS = Table(
    "plays",
    (
        Column("user_id", "id"),
        Column("track_id", "id"),
        Column("plays", "int", min_value=1),
    ),
    key=("user_id", "track_id"),
    foreign_keys=(
        ForeignKey("user_id", "users", "user_id"),
        ForeignKey("track_id", "tracks", "track_id"),
    ),
    required=False,
)

EDITORIAL_SEEDS = Table(
    "editorial_seeds",
    (
        Column("artist_id", "id"),
        Column("similar_artist_id", "id"),
        Column("editor", "str", nullable=True),
        Column("created_at", "timestamp", nullable=True),
    ),
    foreign_keys=(
        ForeignKey("artist_id", "artists", "artist_id"),
        ForeignKey("similar_artist_id", "artists", "artist_id"),
    ),
)

EDITORIAL_REJECTIONS = Table(
    "editorial_rejections",
    EDITORIAL_SEEDS.columns,
    foreign_keys=EDITORIAL_SEEDS.foreign_keys,
    required=False,
)

OPT_OUTS = Table(
    "opt_outs",
    (
        Column("entity_type", "enum", values=OPT_OUT_ENTITY_TYPES),
        Column("entity_id", "id"),
    ),
    key=("entity_type", "entity_id"),
    required=False,
)

ARTIST_TAGS = Table(
    "artist_tags",
    (
        Column("artist_id", "id"),
        Column("tag", "str"),
        Column("weight", "float", nullable=True, min_value=0.0),
    ),
    foreign_keys=(ForeignKey("artist_id", "artists", "artist_id"),),
    required=False,
)

#: All tables, in dependency order (a table only references tables before it).
TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        LABELS,
        ARTISTS,
        TRACKS,
        USERS,
        STREAMS,
        PLAYS,
        EDITORIAL_SEEDS,
        EDITORIAL_REJECTIONS,
        OPT_OUTS,
        ARTIST_TAGS,
    )
}

#: Exactly one of these must be present.
EVENT_TABLES = ("streams", "plays")
