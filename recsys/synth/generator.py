"""Generate a synthetic streaming platform: contract tables plus hidden ground truth.

``generate_platform(out_dir, scale=..., seed=...)`` writes every table of the
data contract as ``NAME.parquet`` in ``out_dir`` and the truth the engine must
never read under ``out_dir/_truth/``. One ``numpy`` generator seeded with
``seed`` drives everything, so a seed reproduces the files byte for byte.

The platform's clock is fixed: "now" is 2026-10-31T23:59:59Z and the streams
cover the ``scale.window_days`` days before it (90 by default, from
2026-08-03T00:00:00Z). Fixing it rather than reading the wall clock keeps the
files reproducible.

Ground truth (``out_dir/_truth/``):

``accounts.parquet``
    ``user_id``, ``kind`` (``genuine``, ``bot_loop``, ``bot_farm``,
    ``bot_bought``), ``farm_id``, ``campaign_id``, ``target_artist_id`` (the
    artist a bought-stream account promotes), ``target_track_ids`` (a loop
    bot's tracks, a farm's catalogue), ``overlapping`` (plays overlap in time).
``users.parquet``
    ``user_id``, ``kind``, ``main_style``, ``styles``, ``style_weights`` (the
    latent taste; empty for bots), ``planned_plays``.
``tracks.parquet``
    ``track_id``, ``artist_id``, ``style``, ``ai_generated`` (true nature,
    declared or not), ``content_farm``, ``new_release``, ``popularity``.
``artists.parquet``
    ``artist_id``, ``label_id``, ``style``, ``kind`` (``human``,
    ``content_farm``), ``popularity``.
``labels.parquet``
    ``label_id``, ``kind`` (``major``, ``indie``, ``content_farm``).
``styles.parquet``, ``farms.parquet``
    Style names, families and related styles; each farm's size and catalogue.
``meta.json``
    Scale and its parameters, seed, ``now``, the window, accounts and streams
    per kind, catalogue counts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from recsys.contract.schema import (
    AI_DISCLOSURES,
    LABEL_STATUSES,
    TABLES,
    TRACK_STATUSES,
)
from recsys.synth import vocab
from recsys.synth._arrays import MS_PER_DAY, dict_column, id_strings
from recsys.synth.bots import BOT_KINDS, BotAccounts, bot_streams
from recsys.synth.catalogue import ARTIST_KINDS, LABEL_KINDS, Catalogue, build_catalogue
from recsys.synth.listening import GenuineUsers, Plays, build_users, genuine_streams
from recsys.synth.scales import SCALES, Scale

logger = logging.getLogger(__name__)

#: End of the streams window (exclusive); "now" is one second before it.
WINDOW_END = datetime(2026, 11, 1, tzinfo=UTC)
NOW = WINDOW_END - timedelta(seconds=1)
#: Every table the generator writes (``plays`` is left out: we have events).
WRITTEN_TABLES = (
    "labels",
    "artists",
    "tracks",
    "users",
    "streams",
    "editorial_seeds",
    "editorial_rejections",
    "opt_outs",
    "artist_tags",
)
TRUTH_DIR = "_truth"
USER_KINDS = ("genuine", *BOT_KINDS)
#: Rows per Parquet row group of the streams table.
ROW_GROUP = 2_000_000
_COMPRESSION = "zstd"
_TS = pa.timestamp("us", tz="UTC")

if set(WRITTEN_TABLES) != set(TABLES) - {"plays"}:  # the contract grew a table
    raise RuntimeError(f"synth writes {WRITTEN_TABLES}, the contract has {tuple(TABLES)}")


@dataclass(frozen=True)
class GenerationSummary:
    """What :func:`generate_platform` wrote.

    Attributes
    ----------
    out_dir
        Directory holding the contract tables.
    scale
        Name of the scale.
    seed
        Seed of the random generator.
    row_counts
        Rows written per contract table.
    elapsed_s
        Wall-clock seconds the generation took.
    now
        The platform's "now" (end of the streams window).
    window_start
        First instant of the streams window.
    truth_dir
        Directory of the ground truth (``out_dir/_truth``).
    bot_streams
        Streams produced by bot accounts.
    """

    out_dir: Path
    scale: str
    seed: int
    row_counts: dict[str, int]
    elapsed_s: float
    now: datetime = NOW
    window_start: datetime | None = None
    truth_dir: Path | None = None
    bot_streams: int = 0


class _Stages:
    """Log the time of each step and, for big scales, show a progress bar."""

    def __init__(self, names: tuple[str, ...], show: bool) -> None:
        # disable=None: no bar when stderr is not a terminal.
        self.bar = tqdm(total=len(names), desc="synth", unit="step", disable=not show or None)
        self.t0 = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.bar.set_postfix_str(name)
        t = time.perf_counter()
        yield
        logger.info("%-20s %6.2f s", name, time.perf_counter() - t)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def generate_platform(
    out_dir: str | Path, *, scale: str | Scale = "small", seed: int = 0
) -> GenerationSummary:
    """Generate a believable streaming platform and write it to ``out_dir``.

    Parameters
    ----------
    out_dir
        Output directory, created if needed. Contract tables go to
        ``out_dir/NAME.parquet``, ground truth to ``out_dir/_truth/``.
    scale
        A name from :data:`recsys.synth.SCALES` (``tiny``, ``small``,
        ``medium``, ``large``) or a :class:`~recsys.synth.scales.Scale`.
    seed
        Seed of the single random generator: the same seed writes the same bytes.

    Returns
    -------
    GenerationSummary
        Paths, row counts and timing.

    Raises
    ------
    ValueError
        If ``scale`` is not a known scale name.
    """
    if isinstance(scale, str):
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; choose one of {sorted(SCALES)}")
        scale = SCALES[scale]
    t0 = time.perf_counter()
    out = Path(out_dir)
    truth = out / TRUTH_DIR
    truth.mkdir(parents=True, exist_ok=True)
    for stale in ("plays.parquet", "plays.csv", *(f"{t}.csv" for t in WRITTEN_TABLES)):
        # A leftover would make the directory ambiguous for the loader.
        if (out / stale).exists():
            logger.warning("removing stale %s from %s", stale, out)
            (out / stale).unlink()

    rng = np.random.default_rng(seed)
    window_start = WINDOW_END - timedelta(days=scale.window_days)
    base_ms = int(window_start.timestamp() * 1000)
    # A progress bar only where steps take long enough to watch.
    progress = scale.n_streams >= 3_000_000
    stages = _Stages(
        ("catalogue", "users", "genuine streams", "bots", "ids", "tables", "streams", "truth"),
        show=progress,
    )
    logger.info("generating %s platform (seed %d) in %s", scale.name, seed, out)

    with stages("catalogue"):
        cat = build_catalogue(rng, scale)
    with stages("users"):
        users = build_users(rng, scale, cat)
    with stages("genuine streams"):
        genuine, drop_stats = genuine_streams(rng, scale, cat, users)
    with stages("bots"):
        bot_plays, bots = bot_streams(rng, scale, cat, len(genuine), first_user=len(users))
    with stages("ids"):
        ids = _Ids.build(rng, cat, users, bots)
    row_counts: dict[str, int] = {}
    with stages("tables"):
        tables = _catalogue_tables(cat, users, bots, ids, base_ms)
        for name, table in tables.items():
            pq.write_table(table, out / f"{name}.parquet", compression=_COMPRESSION)
            row_counts[name] = table.num_rows
    with stages("streams"):
        row_counts["streams"] = _write_streams(
            out / "streams.parquet", genuine, bot_plays, ids, base_ms, progress
        )
    with stages("truth"):
        _write_truth(truth, scale, seed, cat, users, bots, ids, genuine, bot_plays, drop_stats)
    stages.close()

    elapsed = time.perf_counter() - t0
    logger.info("generated %s in %.1f s: %s", scale.name, elapsed, row_counts)
    return GenerationSummary(
        out_dir=out,
        scale=scale.name,
        seed=seed,
        row_counts={t: row_counts[t] for t in WRITTEN_TABLES},
        elapsed_s=elapsed,
        now=NOW,
        window_start=window_start,
        truth_dir=truth,
        bot_streams=len(bot_plays),
    )


@dataclass
class _Ids:
    """Public ids of every entity, in internal index order, and the order to write rows in."""

    label: np.ndarray
    artist: np.ndarray
    track: np.ndarray
    user: np.ndarray
    label_order: np.ndarray
    artist_order: np.ndarray
    track_order: np.ndarray
    user_order: np.ndarray
    user_created_ms: np.ndarray
    user_consent: np.ndarray

    @classmethod
    def build(
        cls, rng: np.random.Generator, cat: Catalogue, users: GenuineUsers, bots: BotAccounts
    ) -> _Ids:
        # Catalogue ids are shuffled so that nothing can be read from them;
        # user ids follow sign-up order, as on a real platform (so bots, being
        # new accounts, get recent ids, like every other new user).
        def shuffled(n: int) -> tuple[np.ndarray, np.ndarray]:
            number = rng.permutation(n)
            return number, np.argsort(number)

        lab_no, lab_order = shuffled(cat.n_labels)
        art_no, art_order = shuffled(cat.n_artists)
        trk_no, trk_order = shuffled(cat.n_tracks)
        created = np.r_[users.created_ms, bots.created_ms]
        user_order = np.argsort(created, kind="stable")
        user_no = np.empty_like(user_order)
        user_no[user_order] = np.arange(len(user_order))
        return cls(
            label=id_strings("l", lab_no + 1, 5),
            artist=id_strings("a", art_no + 1, 6),
            track=id_strings("t", trk_no + 1, 7),
            user=id_strings("u", user_no + 1, 7),
            label_order=lab_order,
            artist_order=art_order,
            track_order=trk_order,
            user_order=user_order,
            user_created_ms=created,
            user_consent=np.r_[users.consent, bots.consent],
        )


def _ts(ms: np.ndarray, base_ms: int) -> pa.Array:
    return pa.array((np.asarray(ms, dtype=np.int64) + base_ms) * 1000, type=_TS)


def _enum(codes: np.ndarray, values: tuple[str, ...]) -> pa.Array:
    return pa.array(np.array(values, dtype=object)[codes], type=pa.string())


def _catalogue_tables(
    cat: Catalogue, users: GenuineUsers, bots: BotAccounts, ids: _Ids, base_ms: int
) -> dict[str, pa.Table]:
    """Every contract table but ``streams``, rows ordered by id."""
    start_day = base_ms // MS_PER_DAY
    release = pa.array(
        (cat.track_release_day + start_day).astype(np.int32),
        type=pa.date32(),
        mask=~cat.track_release_known,
    )
    score = cat.track_ai_score
    tables = {
        "labels": pa.table(
            {
                "label_id": ids.label,
                "name": pa.array(cat.label_name, pa.string()),
                "status": _enum(cat.label_status, LABEL_STATUSES),
            }
        ).take(ids.label_order),
        "artists": pa.table(
            {
                "artist_id": ids.artist,
                "name": pa.array(cat.artist_name, pa.string()),
                "label_id": ids.label[cat.artist_label],
                "verified": pa.array(cat.artist_verified, pa.bool_()),
            }
        ).take(ids.artist_order),
        "tracks": pa.table(
            {
                "track_id": ids.track,
                "artist_id": ids.artist[cat.track_artist],
                "title": pa.array(cat.track_title, pa.string()),
                "release_date": release,
                "duration_ms": pa.array(cat.track_duration_ms, pa.int64()),
                "ai_disclosure": _enum(cat.track_disclosure, AI_DISCLOSURES),
                "ai_score": pa.array(np.round(score, 4), pa.float64(), mask=np.isnan(score)),
                "status": _enum(cat.track_status, TRACK_STATUSES),
            }
        ).take(ids.track_order),
        "users": pa.table(
            {
                "user_id": ids.user,
                "personalization_consent": pa.array(ids.user_consent, pa.bool_()),
                "created_at": _ts(ids.user_created_ms, base_ms),
            }
        ).take(ids.user_order),
        "editorial_seeds": _pairs(
            cat.seed_a, cat.seed_b, cat.seed_editor, cat.seed_created_ms, ids, base_ms
        ),
        "editorial_rejections": _pairs(
            cat.rej_a, cat.rej_b, cat.rej_editor, cat.rej_created_ms, ids, base_ms
        ),
        "opt_outs": pa.table(
            {
                "entity_type": pa.array(
                    ["artist"] * len(cat.opt_out_artists) + ["label"] * len(cat.opt_out_labels),
                    pa.string(),
                ),
                "entity_id": np.r_[ids.artist[cat.opt_out_artists], ids.label[cat.opt_out_labels]],
            }
        ),
        "artist_tags": _sorted_by(
            pa.table(
                {
                    "artist_id": ids.artist[cat.tag_artist],
                    "tag": pa.array(cat.tag_name, pa.string()),
                    "weight": pa.array(cat.tag_weight, pa.float64()),
                }
            ),
            ids.artist[cat.tag_artist],
        ),
    }
    for name, table in tables.items():
        table = table.select(list(TABLES[name].column_names))
        tables[name] = table.cast(_contract_schema(name, table.schema))
    return tables


def _contract_schema(name: str, current: pa.Schema) -> pa.Schema:
    """The Arrow schema the contract asks for (ids and strings as plain strings)."""
    kinds = {
        "id": pa.string(),
        "str": pa.string(),
        "enum": pa.string(),
        "bool": pa.bool_(),
        "date": pa.date32(),
        "timestamp": _TS,
        "int": pa.int64(),
        "float": pa.float64(),
    }
    return pa.schema([pa.field(c.name, kinds[c.kind]) for c in TABLES[name].columns])


def _sorted_by(table: pa.Table, key: np.ndarray) -> pa.Table:
    return table.take(np.argsort(key, kind="stable"))


def _pairs(
    a: np.ndarray,
    b: np.ndarray,
    editor: np.ndarray,
    created_ms: np.ndarray,
    ids: _Ids,
    base_ms: int,
) -> pa.Table:
    table = pa.table(
        {
            "artist_id": ids.artist[a],
            "similar_artist_id": ids.artist[b],
            "editor": pa.array(editor, pa.string()),
            "created_at": _ts(created_ms, base_ms),
        }
    )
    return table.take(np.argsort(created_ms, kind="stable"))


def _write_streams(
    path: Path, genuine: Plays, bots: Plays, ids: _Ids, base_ms: int, progress: bool
) -> int:
    """Write all plays in time order, ids dictionary-encoded, in row groups."""
    t = np.r_[genuine.t_ms, bots.t_ms]
    order = np.argsort(t, kind="stable")
    t = t[order]
    user = np.r_[genuine.user, bots.user][order]
    track = np.r_[genuine.track, bots.track][order]
    ms = np.r_[genuine.ms_played, bots.ms_played][order]
    del order
    user_dict = pa.array(ids.user, pa.string())
    track_dict = pa.array(ids.track, pa.string())
    schema = pa.schema(
        [
            ("user_id", pa.dictionary(pa.int32(), pa.string())),
            ("track_id", pa.dictionary(pa.int32(), pa.string())),
            ("ts", _TS),
            ("ms_played", pa.int64()),
        ]
    )
    n = len(t)
    # store_schema=False: readers see plain strings, not Arrow dictionaries;
    # the Parquet pages are dictionary-encoded either way.
    with pq.ParquetWriter(path, schema, compression=_COMPRESSION, store_schema=False) as w:
        for lo in tqdm(
            range(0, max(n, 1), ROW_GROUP), desc="streams", unit="rg", disable=not progress or None
        ):
            hi = min(lo + ROW_GROUP, n)
            w.write_table(
                pa.table(
                    {
                        "user_id": dict_column(user[lo:hi], user_dict),
                        "track_id": dict_column(track[lo:hi], track_dict),
                        "ts": _ts(t[lo:hi], base_ms),
                        "ms_played": pa.array(ms[lo:hi], pa.int64()),
                    },
                    schema=schema,
                ),
                row_group_size=ROW_GROUP,
            )
    return n


def _list_array(counts: np.ndarray, values: pa.Array) -> pa.Array:
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _write_truth(
    truth: Path,
    scale: Scale,
    seed: int,
    cat: Catalogue,
    users: GenuineUsers,
    bots: BotAccounts,
    ids: _Ids,
    genuine: Plays,
    bot_plays: Plays,
    drop_stats: dict[str, int],
) -> None:
    """Ground truth for evaluation; the engine never reads this directory."""
    style_names = np.array(vocab.STYLE_NAMES, dtype=object)
    n_gen, n_bot = len(users), len(bots)
    n_all = n_gen + n_bot
    kind = np.r_[np.zeros(n_gen, np.int64), 1 + bots.kind]

    def nullable_ids(idx: np.ndarray, names: np.ndarray) -> pa.Array:
        idx = np.asarray(idx)
        return pa.array(names[np.maximum(idx, 0)], pa.string(), mask=idx < 0)

    def write(name: str, table: pa.Table) -> None:
        pq.write_table(table, truth / f"{name}.parquet", compression=_COMPRESSION)

    farm_id = np.r_[np.full(n_gen, -1), bots.farm_id]
    campaign = np.r_[np.full(n_gen, -1), bots.campaign_id]
    farm_names = np.char.add(
        "farm", np.char.zfill(np.arange(max(1, len(bots.farm_size))).astype(str), 3)
    )
    camp_names = np.char.add(
        "campaign", np.char.zfill(np.arange(max(1, campaign.max() + 1)).astype(str), 3)
    )
    write(
        "accounts",
        pa.table(
            {
                "user_id": ids.user,
                "kind": _enum(kind, USER_KINDS),
                "farm_id": nullable_ids(farm_id, farm_names),
                "campaign_id": nullable_ids(campaign, camp_names),
                "target_artist_id": nullable_ids(
                    np.r_[np.full(n_gen, -1), bots.target_artist], ids.artist
                ),
                "target_track_ids": _list_array(
                    np.r_[np.zeros(n_gen, np.int64), bots.target_counts],
                    pa.array(ids.track[bots.target_tracks], pa.string()),
                ),
                "overlapping": pa.array(np.r_[np.zeros(n_gen, bool), bots.overlapping]),
            }
        ).take(ids.user_order),
    )
    styles = np.r_[users.styles, np.full((n_bot, 3), -1)]
    weights = np.r_[users.weights, np.zeros((n_bot, 3))]
    used = styles >= 0
    write(
        "users",
        pa.table(
            {
                "user_id": ids.user,
                "kind": _enum(kind, USER_KINDS),
                "main_style": nullable_ids(styles[:, 0], style_names),
                "styles": _list_array(
                    used.sum(axis=1), pa.array(style_names[styles[used]], pa.string())
                ),
                "style_weights": _list_array(
                    used.sum(axis=1), pa.array(np.round(weights[used], 4))
                ),
                "planned_plays": pa.array(np.r_[users.n_plays, np.zeros(n_bot, np.int64)]),
            }
        ).take(ids.user_order),
    )
    write(
        "tracks",
        pa.table(
            {
                "track_id": ids.track,
                "artist_id": ids.artist[cat.track_artist],
                "style": pa.array(style_names[cat.track_style], pa.string()),
                "ai_generated": pa.array(cat.track_ai),
                "content_farm": pa.array(cat.track_farm),
                "new_release": pa.array(cat.track_new),
                "popularity": pa.array(cat.track_weight),
            }
        ).take(ids.track_order),
    )
    write(
        "artists",
        pa.table(
            {
                "artist_id": ids.artist,
                "label_id": ids.label[cat.artist_label],
                "style": pa.array(style_names[cat.artist_style], pa.string()),
                "kind": _enum(cat.artist_kind, ARTIST_KINDS),
                "popularity": pa.array(cat.artist_popularity),
            }
        ).take(ids.artist_order),
    )
    write(
        "labels",
        pa.table({"label_id": ids.label, "kind": _enum(cat.label_kind, LABEL_KINDS)}).take(
            ids.label_order
        ),
    )
    rel = vocab.related_matrix()
    write(
        "styles",
        pa.table(
            {
                "style": list(vocab.STYLE_NAMES),
                "family": [s.family for s in vocab.STYLES],
                "weight": [s.weight for s in vocab.STYLES],
                "related": [list(style_names[rel[i]]) for i in range(len(vocab.STYLES))],
            }
        ),
    )
    write(
        "farms",
        pa.table(
            {
                "farm_id": farm_names[: len(bots.farm_size)],
                "n_accounts": pa.array(bots.farm_size, pa.int64()),
                "target_track_ids": [list(ids.track[c]) for c in bots.farm_catalogue],
            }
        ),
    )

    # Streams per account kind.
    play_kind = np.r_[
        np.zeros(len(genuine), np.int64), 1 + bots.kind[bot_plays.user - bots.first_user]
    ]
    stream_counts = np.bincount(play_kind, minlength=len(USER_KINDS))
    account_counts = np.bincount(kind, minlength=len(USER_KINDS))
    window_start = WINDOW_END - timedelta(days=scale.window_days)
    meta = {
        "scale": scale.name,
        "seed": seed,
        "now": NOW.isoformat().replace("+00:00", "Z"),
        "window_start": window_start.isoformat().replace("+00:00", "Z"),
        "window_end": WINDOW_END.isoformat().replace("+00:00", "Z"),
        "window_days": scale.window_days,
        "new_release_days": 28,
        "params": asdict(scale),
        "styles": list(vocab.STYLE_NAMES),
        "accounts": {k: int(c) for k, c in zip(USER_KINDS, account_counts, strict=True)},
        "streams": {k: int(c) for k, c in zip(USER_KINDS, stream_counts, strict=True)},
        "bot_stream_share": round(float(stream_counts[1:].sum() / max(1, stream_counts.sum())), 5),
        "tracks": {
            "total": cat.n_tracks,
            "content_farm": int(cat.track_farm.sum()),
            "ai_generated": int(cat.track_ai.sum()),
            "new_release": int(cat.track_new.sum()),
            "taken_down": int((cat.track_status == TRACK_STATUSES.index("taken_down")).sum()),
        },
        "artists": {
            k: int(c)
            for k, c in zip(ARTIST_KINDS, np.bincount(cat.artist_kind, minlength=2), strict=True)
        },
        "genuine_plays_dropped": drop_stats,
        "users_total": n_all,
    }
    (truth / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
