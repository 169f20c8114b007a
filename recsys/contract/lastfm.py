"""Map the Last.fm HetRec 2011 (``hetrec2011-lastfm-2k``) files onto the data contract.

The public data set has users, artists, aggregated play counts per
(user, artist) and user-applied tags, but no tracks, labels, timestamps,
consent flags or editorial relations. The mapping fills the gaps with the
most neutral values the contract allows, so the real data can go through the
same pipeline as a platform export:

``labels``
    One label, ``lastfm-hetrec2011``, status ``verified``.
``artists``
    Every artist of ``artists.dat`` plus any ``artistID`` that has plays in
    ``user_artists.dat`` but no row in ``artists.dat`` (name null); id
    ``a<artistID>``, all ``verified``, all on the one label.
``tracks``
    Exactly one stand-in track per artist: ``t<artistID>``, titled with the
    artist name, 240 000 ms, ``ai_disclosure`` ``none``, ``ai_score`` null,
    ``status`` ``active``, ``release_date`` null. Artist-level plays thus
    become track-level plays one to one.
``users``
    ``u<userID>`` for every user with plays or tags, all with
    ``personalization_consent`` true (the data set was published for
    research), ``created_at`` null.
``plays``
    ``user_id``, ``track_id``, ``plays`` = ``weight`` (rows with a
    non-positive weight are dropped and logged; duplicates are summed).
``artist_tags``
    ``user_taggedartists.dat`` joined with ``tags.dat``; ``weight`` is the
    number of distinct users who applied the tag to the artist. Tag
    assignments on artists absent from ``artists`` (the file is a partial
    copy and names 278 such artists) are dropped and logged.
``editorial_seeds``
    Derived from shared tags (there are no editors in the data); see
    :func:`derive_tag_seeds` for the rule. ``editor`` is
    ``"derived-from-tags"``, ``created_at`` null.

The source files are tab-separated with one header line. ``tags.dat`` is
ISO-8859-1, the others are ASCII/UTF-8; most use CRLF line ends
(``artists.dat`` uses LF) and artist names contain literal double quotes, so
the reader splits lines itself instead of using a CSV dialect.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from recsys.contract.schema import TABLES, Table

logger = logging.getLogger(__name__)

__all__ = [
    "HETREC_FILES",
    "LABEL_ID",
    "SEED_EDITOR",
    "contract_arrow_schema",
    "convert_lastfm",
    "derive_tag_seeds",
    "read_hetrec_table",
]

#: The one label every Last.fm artist is put on.
LABEL_ID = "lastfm-hetrec2011"
#: ``editor`` of the tag-derived editorial seeds.
SEED_EDITOR = "derived-from-tags"
#: Stand-in duration of the one track per artist.
TRACK_DURATION_MS = 240_000

#: HetRec file per table: file name, encoding, expected header, integer columns.
HETREC_FILES: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    "user_artists": (
        "user_artists.dat",
        "utf-8",
        ("userID", "artistID", "weight"),
        ("userID", "artistID", "weight"),
    ),
    "artists": ("artists.dat", "utf-8", ("id", "name", "url", "pictureURL"), ("id",)),
    "tags": ("tags.dat", "iso-8859-1", ("tagID", "tagValue"), ("tagID",)),
    "user_taggedartists": (
        "user_taggedartists.dat",
        "utf-8",
        ("userID", "artistID", "tagID", "day", "month", "year"),
        ("userID", "artistID", "tagID", "day", "month", "year"),
    ),
}

_ARROW_TYPES: dict[str, pa.DataType] = {
    "id": pa.string(),
    "str": pa.string(),
    "enum": pa.string(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "int": pa.int64(),
    "float": pa.float64(),
}


def contract_arrow_schema(table: Table) -> pa.Schema:
    """Arrow schema of a contract table (column order and logical types).

    Parameters
    ----------
    table : recsys.contract.schema.Table

    Returns
    -------
    pyarrow.Schema
        ``id``/``str``/``enum`` as string, ``date`` as date32, ``timestamp``
        as UTC microseconds, ``int`` as int64, ``float`` as float64.
    """
    return pa.schema(
        [pa.field(c.name, _ARROW_TYPES[c.kind], nullable=c.nullable) for c in table.columns]
    )


def read_hetrec_table(src_dir: Path | str, name: str) -> pd.DataFrame:
    """Read one HetRec ``.dat`` file into a DataFrame.

    Parameters
    ----------
    src_dir : Path or str
        Directory holding the HetRec files.
    name : str
        Key of :data:`HETREC_FILES` (``user_artists``, ``artists``, ``tags``,
        ``user_taggedartists``).

    Returns
    -------
    pandas.DataFrame, shape (n_rows, n_columns)
        Columns as in the file header; the id/count columns as int64, the
        rest as str with quotes kept verbatim.

    Raises
    ------
    FileNotFoundError
        The file is missing.
    ValueError
        The header differs from the expected one or a row has the wrong
        number of fields (named by line number).
    """
    file_name, encoding, header, int_cols = HETREC_FILES[name]
    path = Path(src_dir) / file_name
    text = path.read_bytes().decode(encoding)
    # Split on "\n" only: str.splitlines() would also break on characters
    # such as U+0085 that ISO-8859-1 tag names may legitimately contain.
    lines = [line.rstrip("\r") for line in text.split("\n")]
    # Blank lines occur at the end of some files (a lone "\r" after the last row).
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if not numbered:
        raise ValueError(f"{path}: empty file")
    got_header = tuple(numbered[0][1].lstrip("\ufeff").split("\t"))
    if got_header != header:
        raise ValueError(f"{path}: header {got_header!r}, expected {header!r}")
    rows = []
    for lineno, line in numbered[1:]:
        fields = line.split("\t")
        if len(fields) != len(header):
            raise ValueError(
                f"{path}:{lineno}: {len(fields)} tab-separated fields, expected {len(header)}"
            )
        rows.append(fields)
    df = pd.DataFrame(rows, columns=list(header), dtype=object)
    for col in header:
        if col in int_cols:
            try:
                df[col] = df[col].astype(np.int64)
            except ValueError as exc:
                raise ValueError(f"{path}: column {col!r} is not integer: {exc}") from exc
        else:
            df[col] = df[col].astype(str)
    return df


def _tag_profiles(artist_tags: pd.DataFrame) -> tuple[sp.csr_matrix, pd.Index]:
    """Artist x tag weight matrix.

    Returns
    -------
    profiles : scipy.sparse.csr_matrix, shape (n_artists, n_tags), float64
    artists : pandas.Index, shape (n_artists,)
        ``artist_id`` of each row.
    """
    a_codes, artists = pd.factorize(artist_tags["artist_id"], sort=True)
    t_codes, tags = pd.factorize(artist_tags["tag"], sort=True)
    profiles = sp.csr_matrix(
        (artist_tags["weight"].to_numpy(np.float64), (a_codes, t_codes)),
        shape=(len(artists), len(tags)),
    )
    profiles.sum_duplicates()
    return profiles, pd.Index(artists)


def derive_tag_seeds(
    artist_tags: pd.DataFrame,
    *,
    seeds_per_artist: int = 3,
    min_tag_weight: float = 5.0,
    min_similarity: float = 0.6,
    chunk_size: int = 1024,
) -> pd.DataFrame:
    """Similar-artist pairs from shared tags, standing in for editorial seeds.

    Rule:

    1. An artist's tag profile is its vector of ``artist_tags.weight`` (the
       number of users who applied each tag to it).
    2. Only artists with enough tag evidence take part: the sum of their
       profile is at least ``min_tag_weight`` (so one user's single tag does
       not make an editorial relation).
    3. For each such artist, the ``seeds_per_artist`` other such artists
       with the highest cosine similarity of profiles, keeping only those with
       similarity ``>= min_similarity``; ties go to the smaller ``artist_id``.
    4. Relations are undirected: the union of the per-artist lists is
       emitted once per unordered pair, with the smaller id (string order) in
       ``artist_id``.

    Parameters
    ----------
    artist_tags : pandas.DataFrame, shape (n_rows, 3)
        Contract ``artist_tags`` rows (``artist_id``, ``tag``, ``weight``).
    seeds_per_artist : int, default 3
        Neighbours kept per artist before symmetrising (0 gives no seeds).
    min_tag_weight : float, default 5.0
        Least total tag weight for an artist to take part.
    min_similarity : float, default 0.6
        Least cosine similarity of a kept pair.
    chunk_size : int, default 1024
        Rows of the similarity matrix computed at once (memory bound:
        ``chunk_size * n_eligible`` floats).

    Returns
    -------
    pandas.DataFrame, shape (n_pairs, 3)
        Columns ``artist_id``, ``similar_artist_id``, ``similarity``, sorted by
        ``artist_id`` then ``similar_artist_id``.
    """
    empty = pd.DataFrame(
        {
            "artist_id": pd.Series(dtype=str),
            "similar_artist_id": pd.Series(dtype=str),
            "similarity": pd.Series(dtype=np.float64),
        }
    )
    if seeds_per_artist <= 0 or artist_tags.empty:
        return empty
    profiles, artists = _tag_profiles(artist_tags)
    totals = np.asarray(profiles.sum(axis=1)).ravel()
    eligible = np.flatnonzero(totals >= min_tag_weight)
    if eligible.size < 2:
        return empty
    x = profiles[eligible]
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    x = sp.csr_matrix(sp.diags(1.0 / norms) @ x)
    ids = artists[eligible].to_numpy()
    # Ranking by id position breaks similarity ties towards the smaller id,
    # because `artists` came out of a sorted factorize.
    k = min(seeds_per_artist, eligible.size - 1)
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    sim: list[np.ndarray] = []
    xt = x.T.tocsc()
    for start in range(0, eligible.size, chunk_size):
        stop = min(start + chunk_size, eligible.size)
        block = (x[start:stop] @ xt).toarray()
        block[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # no self-pairs
        # Stable sort on negated similarity: equal scores keep column order.
        top = np.argsort(-block, axis=1, kind="stable")[:, :k]
        top_sim = np.take_along_axis(block, top, axis=1)
        keep = top_sim >= min_similarity
        rows = np.broadcast_to(np.arange(start, stop)[:, None], top.shape)
        src.append(rows[keep])
        dst.append(top[keep])
        sim.append(top_sim[keep])
    a = ids[np.concatenate(src)]
    b = ids[np.concatenate(dst)]
    s = np.concatenate(sim)
    if a.size == 0:
        return empty
    lo = np.where(a < b, a, b)
    hi = np.where(a < b, b, a)
    pairs = (
        pd.DataFrame({"artist_id": lo, "similar_artist_id": hi, "similarity": s})
        .drop_duplicates(["artist_id", "similar_artist_id"])
        .sort_values(["artist_id", "similar_artist_id"], ignore_index=True)
    )
    logger.info(
        "tag seeds: %d eligible artists, %d undirected pairs (k=%d, min similarity %.2f)",
        eligible.size,
        len(pairs),
        k,
        min_similarity,
    )
    return pairs


def _write_table(out_dir: Path, name: str, df: pd.DataFrame) -> int:
    """Write ``df`` as ``out_dir/NAME.parquet`` with the contract's column types."""
    schema = contract_arrow_schema(TABLES[name])
    # Build from Python lists so all-null date/timestamp columns become typed
    # nulls rather than pandas object columns of None.
    arrays = [pa.array(df[f.name].tolist(), type=f.type, from_pandas=True) for f in schema]
    table = pa.Table.from_arrays(arrays, schema=schema)
    pq.write_table(table, out_dir / f"{name}.parquet")
    return table.num_rows


def _null_column(n: int) -> list[None]:
    return [None] * n


def convert_lastfm(
    src_dir: Path | str,
    out_dir: Path | str,
    *,
    seeds_per_artist: int = 3,
    min_tag_weight: float = 5.0,
    min_similarity: float = 0.6,
) -> dict[str, int]:
    """Write a contract directory (Parquet) from the HetRec Last.fm files.

    Parameters
    ----------
    src_dir : Path or str
        Directory with ``user_artists.dat``, ``artists.dat``, ``tags.dat`` and
        ``user_taggedartists.dat`` (``user_friends.dat`` is not used: the
        contract has no social graph).
    out_dir : Path or str
        Output directory (created if needed); existing files of the same
        names are overwritten.
    seeds_per_artist, min_tag_weight, min_similarity
        Rule of the tag-derived editorial seeds, see :func:`derive_tag_seeds`.

    Returns
    -------
    dict of str to int
        Rows written per table: ``labels``, ``artists``, ``tracks``,
        ``users``, ``plays``, ``artist_tags``, ``editorial_seeds``.
    """
    src_dir = Path(src_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    ua = read_hetrec_table(src_dir, "user_artists")
    artists_dat = read_hetrec_table(src_dir, "artists")
    tags_dat = read_hetrec_table(src_dir, "tags")
    uta = read_hetrec_table(src_dir, "user_taggedartists")

    if artists_dat["id"].duplicated().any():
        raise ValueError(f"{src_dir / 'artists.dat'}: duplicate artist ids")
    if tags_dat["tagID"].duplicated().any():
        raise ValueError(f"{src_dir / 'tags.dat'}: duplicate tag ids")

    # --- plays -----------------------------------------------------------
    bad = ua["weight"] <= 0
    if bad.any():
        logger.warning("user_artists: dropping %d rows with weight <= 0", int(bad.sum()))
        ua = ua.loc[~bad]
    ua = ua.groupby(["userID", "artistID"], as_index=False, sort=True)["weight"].sum()

    # --- artists and their one track ---------------------------------------
    names = dict(zip(artists_dat["id"], artists_dat["name"], strict=True))
    missing = np.setdiff1d(ua["artistID"].unique(), artists_dat["id"].to_numpy())
    if missing.size:
        logger.warning(
            "%d artistIDs have plays but no row in artists.dat; added without a name",
            missing.size,
        )
    artist_ids = np.union1d(artists_dat["id"].to_numpy(), missing)
    artist_names = [names.get(int(a)) for a in artist_ids]
    artists = pd.DataFrame(
        {
            "artist_id": [f"a{a}" for a in artist_ids],
            "name": artist_names,
            "label_id": LABEL_ID,
            "verified": True,
        }
    )
    n = len(artist_ids)
    tracks = pd.DataFrame(
        {
            "track_id": [f"t{a}" for a in artist_ids],
            "artist_id": artists["artist_id"],
            "title": artist_names,
            "release_date": _null_column(n),
            "duration_ms": TRACK_DURATION_MS,
            "ai_disclosure": "none",
            "ai_score": _null_column(n),
            "status": "active",
        }
    )
    labels = pd.DataFrame(
        {
            "label_id": [LABEL_ID],
            "name": ["Last.fm HetRec 2011 (all artists)"],
            "status": "verified",
        }
    )

    # --- users --------------------------------------------------------------
    user_ids = np.union1d(ua["userID"].unique(), uta["userID"].unique())
    users = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in user_ids],
            "personalization_consent": True,
            "created_at": _null_column(len(user_ids)),
        }
    )
    plays = pd.DataFrame(
        {
            "user_id": "u" + ua["userID"].astype(str),
            "track_id": "t" + ua["artistID"].astype(str),
            "plays": ua["weight"].to_numpy(np.int64),
        }
    )

    # --- artist tags ----------------------------------------------------------
    tagged = uta.merge(tags_dat, on="tagID", how="left")
    no_tag = tagged["tagValue"].isna()
    if no_tag.any():
        logger.warning("user_taggedartists: dropping %d rows with unknown tagID", int(no_tag.sum()))
        tagged = tagged.loc[~no_tag]
    unknown_artist = ~tagged["artistID"].isin(artist_ids)
    if unknown_artist.any():
        logger.warning(
            "user_taggedartists: dropping %d rows on %d artists absent from artists.dat",
            int(unknown_artist.sum()),
            tagged.loc[unknown_artist, "artistID"].nunique(),
        )
        tagged = tagged.loc[~unknown_artist]
    # weight = distinct users per (artist, tag): a user re-tagging the same
    # artist on another day is one vote, not two.
    artist_tags = (
        tagged.groupby(["artistID", "tagValue"], sort=True)["userID"]
        .nunique()
        .rename("weight")
        .reset_index()
    )
    artist_tags = pd.DataFrame(
        {
            "artist_id": "a" + artist_tags["artistID"].astype(str),
            "tag": artist_tags["tagValue"].astype(str),
            "weight": artist_tags["weight"].astype(np.float64),
        }
    )

    # --- editorial seeds ------------------------------------------------------
    pairs = derive_tag_seeds(
        artist_tags,
        seeds_per_artist=seeds_per_artist,
        min_tag_weight=min_tag_weight,
        min_similarity=min_similarity,
    )
    seeds = pd.DataFrame(
        {
            "artist_id": pairs["artist_id"],
            "similar_artist_id": pairs["similar_artist_id"],
            "editor": SEED_EDITOR,
            "created_at": _null_column(len(pairs)),
        }
    )

    tables: Mapping[str, pd.DataFrame] = {
        "labels": labels,
        "artists": artists,
        "tracks": tracks,
        "users": users,
        "plays": plays,
        "artist_tags": artist_tags,
        "editorial_seeds": seeds,
    }
    counts = {name: _write_table(out_dir, name, df) for name, df in tables.items()}
    logger.info("wrote Last.fm contract directory %s: %s", out_dir, counts)
    return counts
