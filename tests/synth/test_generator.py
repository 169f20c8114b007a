"""The synthetic platform: contract conformance, realism and ground truth."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.contract.schema import MIN_STREAM_MS, TABLES
from recsys.synth import NOW, SCALES, GenerationSummary, generate_platform

WRITTEN = [t for t in TABLES if t != "plays"]
TRUTH_FILES = ("accounts", "tracks", "artists", "users", "styles", "labels", "farms")
BOT_KINDS = ("bot_loop", "bot_farm", "bot_bought")
ID_PATTERNS = {
    "user_id": r"u\d{7}",
    "track_id": r"t\d{7}",
    "artist_id": r"a\d{6}",
    "similar_artist_id": r"a\d{6}",
    "label_id": r"l\d{5}",
}
SEED = 7


def _arrow_type_ok(kind: str, typ: pa.DataType) -> bool:
    if kind == "timestamp":
        return pa.types.is_timestamp(typ) and typ.tz == "UTC" and typ.unit in ("us", "ns")
    expected = {
        "id": pa.string(),
        "str": pa.string(),
        "enum": pa.string(),
        "bool": pa.bool_(),
        "date": pa.date32(),
        "int": pa.int64(),
        "float": pa.float64(),
    }[kind]
    return typ == expected


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> GenerationSummary:
    return generate_platform(tmp_path_factory.mktemp("synth") / "tiny", scale="tiny", seed=SEED)


@pytest.fixture(scope="module")
def tables(tiny: GenerationSummary) -> dict[str, pd.DataFrame]:
    return {t: pq.read_table(tiny.out_dir / f"{t}.parquet").to_pandas() for t in WRITTEN}


@pytest.fixture(scope="module")
def truth(tiny: GenerationSummary) -> dict[str, pd.DataFrame]:
    return {
        t: pq.read_table(tiny.out_dir / "_truth" / f"{t}.parquet").to_pandas() for t in TRUTH_FILES
    }


@pytest.fixture(scope="module")
def streams(tables: dict[str, pd.DataFrame], truth: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Streams with the account kind and track facts joined on."""
    s = tables["streams"].merge(truth["accounts"][["user_id", "kind"]], on="user_id", how="left")
    t = tables["tracks"][["track_id", "duration_ms", "release_date"]]
    s = s.merge(t, on="track_id", how="left")
    return s.merge(truth["tracks"][["track_id", "style"]], on="track_id", how="left")


def _ms(ts: pd.Series) -> np.ndarray:
    """UTC timestamps as integer milliseconds."""
    return ts.dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64)


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# ---- API ---------------------------------------------------------------------


def test_summary(tiny: GenerationSummary) -> None:
    assert tiny.scale == "tiny" and tiny.seed == SEED
    assert tiny.elapsed_s > 0
    assert set(tiny.row_counts) == set(WRITTEN)
    for name, n in tiny.row_counts.items():
        assert pq.ParquetFile(tiny.out_dir / f"{name}.parquet").metadata.num_rows == n
    assert tiny.row_counts["streams"] > 15_000
    assert tiny.now == NOW
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny.seed = 1  # type: ignore[misc]


def test_unknown_scale_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown scale"):
        generate_platform(tmp_path / "x", scale="huge")
    assert set(SCALES) >= {"tiny", "small", "medium", "large"}


def test_tiny_is_fast(tiny: GenerationSummary) -> None:
    assert tiny.elapsed_s < 5.0


# ---- contract conformance ------------------------------------------------------


def test_every_table_has_exact_contract_schema(tiny: GenerationSummary) -> None:
    for name in WRITTEN:
        path = tiny.out_dir / f"{name}.parquet"
        assert path.exists(), name
        schema = pq.read_schema(path)
        assert tuple(schema.names) == TABLES[name].column_names, name
        for col in TABLES[name].columns:
            typ = schema.field(col.name).type
            assert _arrow_type_ok(col.kind, typ), f"{name}.{col.name}: {typ}"
    assert not (tiny.out_dir / "plays.parquet").exists()


def test_required_values_enums_and_bounds(tables: dict[str, pd.DataFrame]) -> None:
    for name, frame in tables.items():
        assert len(frame) > 0, name
        for col in TABLES[name].columns:
            values = frame[col.name]
            if not col.nullable:
                assert values.notna().all(), f"{name}.{col.name} has nulls"
            if col.kind == "enum":
                assert set(values.dropna()) <= set(col.values), f"{name}.{col.name}"
            if col.min_value is not None:
                assert (values.dropna() >= col.min_value).all(), f"{name}.{col.name}"
            if col.max_value is not None:
                assert (values.dropna() <= col.max_value).all(), f"{name}.{col.name}"


def test_keys_unique_and_ids_fixed_width(tables: dict[str, pd.DataFrame]) -> None:
    for name, frame in tables.items():
        key = list(TABLES[name].key)
        if key:
            assert not frame.duplicated(key).any(), name
        for col, pattern in ID_PATTERNS.items():
            if col in frame:
                assert frame[col].str.fullmatch(pattern).all(), f"{name}.{col}"
    opt = tables["opt_outs"]
    for kind, pattern in (("artist", ID_PATTERNS["artist_id"]), ("label", ID_PATTERNS["label_id"])):
        assert opt.loc[opt.entity_type == kind, "entity_id"].str.fullmatch(pattern).all()


def test_foreign_keys_resolve(tables: dict[str, pd.DataFrame]) -> None:
    n_checked = 0
    for name, frame in tables.items():
        for fk in TABLES[name].foreign_keys:
            known = set(tables[fk.ref_table][fk.ref_column])
            missing = set(frame[fk.column].dropna()) - known
            assert not missing, f"{name}.{fk.column}: {sorted(missing)[:5]}"
            n_checked += 1
    assert n_checked >= 7
    opt = tables["opt_outs"]
    assert set(opt.loc[opt.entity_type == "artist", "entity_id"]) <= set(
        tables["artists"].artist_id
    )
    assert set(opt.loc[opt.entity_type == "label", "entity_id"]) <= set(tables["labels"].label_id)


def test_streams_inside_window_and_after_account_creation(
    tables: dict[str, pd.DataFrame], tiny: GenerationSummary
) -> None:
    s = tables["streams"]
    assert s.ts.max() <= pd.Timestamp(NOW)
    assert s.ts.min() >= pd.Timestamp(tiny.window_start)
    first = s.groupby("user_id").ts.min()
    created = tables["users"].set_index("user_id").created_at.reindex(first.index)
    assert (created < first).all()


def test_ms_played_never_exceeds_duration(streams: pd.DataFrame) -> None:
    assert (streams.ms_played <= streams.duration_ms).all()
    assert (streams.ms_played > 0).all()


# ---- determinism ---------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_differs(tiny: GenerationSummary, tmp_path: Path) -> None:
    again = generate_platform(tmp_path / "again", scale="tiny", seed=SEED)
    first, second = _file_bytes(tiny.out_dir), _file_bytes(again.out_dir)
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], name
    other = generate_platform(tmp_path / "other", scale="tiny", seed=SEED + 1)
    a = pq.read_table(tiny.out_dir / "streams.parquet").to_pandas()
    b = pq.read_table(other.out_dir / "streams.parquet").to_pandas()
    assert not a.equals(b)


# ---- listening realism ---------------------------------------------------------


def test_genuine_streams_never_overlap(streams: pd.DataFrame) -> None:
    g = streams[streams.kind == "genuine"].sort_values(["user_id", "ts"])
    ts = _ms(g.ts)
    same_user = g.user_id.to_numpy()[1:] == g.user_id.to_numpy()[:-1]
    ends = ts[:-1] + g.ms_played.to_numpy()[:-1]
    assert not np.any(same_user & (ts[1:] < ends))
    assert same_user.sum() > 10_000  # the check had material


def test_genuine_users_rarely_repeat_a_track_within_a_day(streams: pd.DataFrame) -> None:
    g = streams[streams.kind == "genuine"]
    per_day = g.groupby(["user_id", "track_id", g.ts.dt.floor("D")]).size()
    assert (per_day > 5).mean() < 0.05
    assert per_day.median() == 1


def test_skip_fraction_plausible(streams: pd.DataFrame) -> None:
    g = streams[streams.kind == "genuine"]
    skip = (g.ms_played < MIN_STREAM_MS).mean()
    assert 0.12 <= skip <= 0.30
    played = g[g.ms_played >= MIN_STREAM_MS]
    # Most non-skips play a large part of the track.
    assert (played.ms_played >= 0.45 * played.duration_ms).mean() > 0.95


def test_genuine_plays_follow_user_tastes(streams: pd.DataFrame, truth: dict) -> None:
    users = truth["users"]
    g = users[users.kind == "genuine"]
    assert g.styles.map(len).between(1, 3).all()
    assert np.allclose(g.style_weights.map(sum), 1.0, atol=1e-3)
    assert g.main_style.notna().all()
    taste = g.explode("styles")[["user_id", "styles"]].rename(columns={"styles": "style"})
    taste["in_taste"] = True
    gs = streams[streams.kind == "genuine"].merge(taste, on=["user_id", "style"], how="left")
    assert gs.in_taste.fillna(False).astype(bool).mean() > 0.85


def test_activity_heavy_tailed_and_consent(
    streams: pd.DataFrame, tables: dict[str, pd.DataFrame]
) -> None:
    per_user = streams[streams.kind == "genuine"].groupby("user_id").size()
    assert per_user.max() > 5 * per_user.median()
    no_consent = 1 - tables["users"].personalization_consent.mean()
    assert 0.03 <= no_consent <= 0.2


def test_new_releases_streamed_only_after_release(
    streams: pd.DataFrame, tables: dict[str, pd.DataFrame], truth: dict
) -> None:
    tracks = tables["tracks"]
    rel = pd.to_datetime(tracks.release_date)
    cutoff = pd.Timestamp(NOW).tz_localize(None).normalize() - pd.Timedelta(days=27)
    new = tracks[rel >= cutoff]
    assert len(new) >= 3
    # New releases come from established artists (a truth flag for most of them).
    assert truth["tracks"].set_index("track_id").loc[new.track_id].new_release.mean() > 0.5
    release_ts = pd.to_datetime(streams.release_date).dt.tz_localize("UTC")
    assert (streams.ts >= release_ts).where(release_ts.notna(), True).all()
    assert streams.track_id.isin(new.track_id).sum() > 0


# ---- catalogue -----------------------------------------------------------------


def test_labels_artists_and_tracks_mix(tables: dict[str, pd.DataFrame], truth: dict) -> None:
    labels, artists, tracks = tables["labels"], tables["artists"], tables["tracks"]
    assert set(labels.status) == {"verified", "trusted_partner", "unverified", "blocked"}
    assert artists.verified.any() and not artists.verified.all()
    t = tracks.merge(truth["tracks"], on=["track_id", "artist_id"])
    farm, human = t[t.content_farm], t[~t.content_farm]
    assert farm.ai_generated.all() and not human.ai_generated.any()
    assert (farm.ai_disclosure == "generated").any()
    assert ((farm.ai_disclosure == "none") & (farm.ai_score > 0.5)).any()
    assert (human.ai_disclosure == "assisted").any()
    assert human.ai_score.dropna().median() < 0.1
    assert human.ai_score.isna().any()
    # Content-farm artists upload far more tracks than human ones.
    per_artist = t.groupby("artist_id").agg(n=("track_id", "size"), farm=("content_farm", "first"))
    assert per_artist[per_artist.farm].n.median() > 3 * per_artist[~per_artist.farm].n.median()
    farm_labels = truth["labels"].query("kind == 'content_farm'").label_id
    assert set(labels.set_index("label_id").loc[farm_labels, "status"]) <= {
        "unverified",
        "blocked",
        "trusted_partner",
    }


def test_every_exclusion_kind_present(tables: dict[str, pd.DataFrame]) -> None:
    t = tables["tracks"].merge(tables["artists"], on="artist_id", suffixes=("", "_artist"))
    t = t.merge(tables["labels"], on="label_id", suffixes=("", "_label"))
    opt = tables["opt_outs"]
    opted = t.artist_id.isin(opt.loc[opt.entity_type == "artist", "entity_id"]) | t.label_id.isin(
        opt.loc[opt.entity_type == "label", "entity_id"]
    )
    kinds = {
        "taken_down": t.status == "taken_down",
        "generated": t.ai_disclosure == "generated",
        "high_ai_score": (t.ai_disclosure != "generated") & (t.ai_score >= 0.5),
        "unverified_artist": ~t.verified,
        "untrusted_label": t.status_label.isin(["unverified", "blocked"]),
        "opted_out": opted,
    }
    for kind, mask in kinds.items():
        assert mask.any(), kind
    trusted = ~np.logical_or.reduce(list(kinds.values()))
    assert 0.2 < trusted.mean() < 0.95


def test_artist_tags(tables: dict[str, pd.DataFrame], truth: dict) -> None:
    tags = tables["artist_tags"]
    assert not tags.duplicated(["artist_id", "tag"]).any()
    main = tags.sort_values("weight", ascending=False).drop_duplicates("artist_id")
    style = truth["artists"].set_index("artist_id").style
    assert (main.tag.to_numpy() == style.loc[main.artist_id].to_numpy()).all()
    assert tags.groupby("artist_id").size().max() >= 2
    assert 0.5 < tags.artist_id.nunique() / len(tables["artists"]) < 1.0


def test_editorial_seeds_same_style_between_verified(
    tables: dict[str, pd.DataFrame], truth: dict
) -> None:
    seeds = tables["editorial_seeds"]
    assert len(seeds) >= 5
    assert seeds.editor.notna().all() and (seeds.created_at < pd.Timestamp(NOW)).all()
    verified = tables["artists"].set_index("artist_id").verified
    style = truth["artists"].set_index("artist_id").style
    assert verified.loc[seeds.artist_id].all() and verified.loc[seeds.similar_artist_id].all()
    assert (
        style.loc[seeds.artist_id].to_numpy() == style.loc[seeds.similar_artist_id].to_numpy()
    ).all()
    assert (seeds.artist_id != seeds.similar_artist_id).all()
    pairs = {frozenset(p) for p in zip(seeds.artist_id, seeds.similar_artist_id, strict=True)}
    assert len(pairs) == len(seeds)  # undirected, each pair once

    rej = tables["editorial_rejections"]
    assert len(rej) >= 3
    kind = truth["artists"].set_index("artist_id").kind
    cross = style.loc[rej.artist_id].to_numpy() != style.loc[rej.similar_artist_id].to_numpy()
    farm = (kind.loc[rej.artist_id].to_numpy() == "content_farm") | (
        kind.loc[rej.similar_artist_id].to_numpy() == "content_farm"
    )
    assert (cross | farm).all()


# ---- bots and ground truth -----------------------------------------------------


def test_bot_kinds_present_with_plausible_share(
    streams: pd.DataFrame, truth: dict, tiny: GenerationSummary
) -> None:
    acc = truth["accounts"]
    assert set(acc.kind) == {"genuine", *BOT_KINDS}
    per_kind = streams.kind.value_counts()
    for kind in BOT_KINDS:
        assert per_kind.get(kind, 0) > 0, kind
    share = per_kind.drop("genuine").sum() / len(streams)
    assert 0.01 <= share <= 0.10
    assert tiny.bot_streams == per_kind.drop("genuine").sum()
    meta = json.loads((tiny.out_dir / "_truth" / "meta.json").read_text())
    assert meta["streams"] == {k: int(v) for k, v in per_kind.items()}


def test_bot_behaviour(streams: pd.DataFrame, truth: dict, tables: dict) -> None:
    acc = truth["accounts"].set_index("user_id")
    bots = streams[streams.kind != "genuine"]
    targeted = bots[bots.kind.isin(["bot_loop", "bot_farm"])]
    # Loop bots and farms play just past the 30 s threshold.
    assert targeted.ms_played.between(MIN_STREAM_MS, MIN_STREAM_MS + 5_000).all()
    for user, plays in targeted.groupby("user_id"):
        assert set(plays.track_id) <= set(acc.loc[user, "target_track_ids"]), user
    loops = acc[acc.kind == "bot_loop"]
    assert loops.target_track_ids.map(len).between(1, 3).all()
    # A farm's accounts share one catalogue.
    farms = acc[acc.kind == "bot_farm"]
    assert farms.farm_id.notna().all() and farms.groupby("farm_id").size().min() >= 20
    assert (
        farms.groupby("farm_id").target_track_ids.agg(lambda x: len({tuple(v) for v in x})) == 1
    ).all()
    farm_targets = (
        truth["tracks"].set_index("track_id").loc[np.concatenate(farms.target_track_ids.to_numpy())]
    )
    assert farm_targets.content_farm.mean() > 0.5
    # Bought-stream accounts promote a real verified artist.
    bought = acc[acc.kind == "bot_bought"]
    verified = tables["artists"].set_index("artist_id").verified
    assert verified.loc[bought.target_artist_id].all()
    track_artist = tables["tracks"].set_index("track_id").artist_id
    b = bots[bots.kind == "bot_bought"]
    promoted = (
        track_artist.loc[b.track_id].to_numpy() == acc.loc[b.user_id, "target_artist_id"].to_numpy()
    )
    assert 0.5 < promoted.mean() < 0.95


def test_overlapping_loop_bots_are_impossible(streams: pd.DataFrame, truth: dict) -> None:
    acc = truth["accounts"]
    overl = set(acc.loc[acc.overlapping, "user_id"])
    assert acc.loc[acc.overlapping, "kind"].eq("bot_loop").all()
    s = streams[streams.user_id.isin(overl)].sort_values(["user_id", "ts"])
    assert not s.empty
    ts = _ms(s.ts)
    same = s.user_id.to_numpy()[1:] == s.user_id.to_numpy()[:-1]
    assert np.any(same & (ts[1:] < ts[:-1] + s.ms_played.to_numpy()[:-1]))


def test_bots_are_mostly_new_accounts(tables: dict, truth: dict) -> None:
    users = tables["users"].merge(truth["accounts"][["user_id", "kind"]], on="user_id")
    recent = users.created_at >= pd.Timestamp(NOW) - pd.Timedelta(days=150)
    bots = users.kind != "genuine"
    assert recent[bots].mean() > 0.6
    assert recent[~bots].mean() < 0.2


def test_truth_only_under_truth_dir(tiny: GenerationSummary, tables: dict) -> None:
    top = {p.name for p in tiny.out_dir.iterdir()}
    assert top == {f"{t}.parquet" for t in WRITTEN} | {"_truth"}
    for name in TRUTH_FILES:
        assert (tiny.out_dir / "_truth" / f"{name}.parquet").exists()
    meta = json.loads((tiny.out_dir / "_truth" / "meta.json").read_text())
    assert meta["scale"] == "tiny" and meta["seed"] == SEED
    assert meta["now"] == "2026-10-31T23:59:59Z"
    assert set(meta["accounts"]) == {"genuine", *BOT_KINDS}
    truth_words = re.compile(r"bot|farm|genuine|ai_generated|content_farm")
    for name in WRITTEN:
        md = pq.read_metadata(tiny.out_dir / f"{name}.parquet").metadata or {}
        blob = b" ".join(md.values()).decode(errors="replace")
        assert not truth_words.search(blob), name
        assert not any(truth_words.search(c) for c in tables[name].columns)
    styles = pq.read_table(tiny.out_dir / "_truth" / "styles.parquet").to_pandas()
    assert 15 <= len(styles) <= 25


def test_bot_share_is_configurable(tmp_path: Path) -> None:
    scale = dataclasses.replace(SCALES["tiny"], name="tiny-botty", bot_share=0.2)
    summary = generate_platform(tmp_path / "botty", scale=scale, seed=1)
    share = summary.bot_streams / summary.row_counts["streams"]
    assert 0.15 < share < 0.25


def test_small_scale_shape(tmp_path: Path) -> None:
    summary = generate_platform(tmp_path / "small", scale="small", seed=0)
    rc = summary.row_counts
    assert 3_000 <= rc["users"] <= 3_500
    assert rc["tracks"] == 8_000
    assert 300_000 <= rc["streams"] <= 500_000
    t = (
        pq.read_table(
            summary.out_dir / "streams.parquet",
            columns=["user_id", "track_id"],
            read_dictionary=["user_id", "track_id"],
        )
        .unify_dictionaries()
        .combine_chunks()
    )
    key = t.column("user_id").chunk(0).indices.to_numpy().astype(np.int64) * 10**7
    key += t.column("track_id").chunk(0).indices.to_numpy()
    distinct = len(np.unique(key))
    assert 0.3 * rc["streams"] < distinct < 0.8 * rc["streams"]
    assert 0.01 <= summary.bot_streams / rc["streams"] <= 0.10
