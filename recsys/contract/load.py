"""Load a contract directory: check tables and columns, type-check rows, quarantine bad ones.

The loader never drops a row silently and never stops on a bad row: every row
that breaks the contract is kept aside with a reason code (see
:data:`REASON_CODES`) and the run goes on. A missing required table or column
stops the run before any work, naming the table and column.

Event tables (``streams`` / ``plays``) can hold tens of millions of rows, so
their id columns are read dictionary-encoded and resolved to integer row
positions (``user_idx``, ``track_idx``) into the validated ``users`` and
``tracks`` frames; no per-row Python string is ever built for them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recsys.contract.schema import EVENT_TABLES, TABLES, Column, Table
from recsys.errors import ContractError, MissingColumn, MissingTable

logger = logging.getLogger(__name__)

#: Reason codes a quarantined row can carry; the column name follows a colon.
REASON_CODES = (
    "missing_value",  # a required (or key) value is null or empty
    "bad_type",  # the value cannot be read as the column's type (bool, int, date, ...)
    "bad_enum",  # not one of the allowed values
    "out_of_range",  # numeric value outside its bounds (negative duration, ai_score > 1, ...)
    "duplicate_key",  # a second row with the same key; the first one is kept
    "unknown_reference",  # foreign key naming a row that does not exist (or was quarantined)
)

_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


@dataclass
class Quarantine:
    """Rows that broke the contract, per table.

    Each frame has columns ``row`` (0-based data row in the input file),
    ``reason`` (``code:column``) and the table's contract columns as strings.
    """

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)

    def add(self, table: str, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        if table in self.frames:
            frame = pd.concat([self.frames[table], frame], ignore_index=True)
        self.frames[table] = frame

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows quarantined per table and per reason."""
        return {
            t: {str(k): int(v) for k, v in f["reason"].value_counts().sort_index().items()}
            for t, f in sorted(self.frames.items())
        }

    @property
    def total(self) -> int:
        return int(sum(len(f) for f in self.frames.values()))

    def redact_users(self, user_ids: frozenset[str] | set[str]) -> int:
        """Drop quarantined rows of erased users (an erasure leaves no trace); returns rows dropped."""
        if not user_ids:
            return 0
        dropped = 0
        for table, frame in list(self.frames.items()):
            if "user_id" in frame:
                keep = ~frame["user_id"].isin(list(user_ids))
                dropped += int((~keep).sum())
                self.frames[table] = frame.loc[keep].reset_index(drop=True)
                if self.frames[table].empty:
                    del self.frames[table]
        return dropped

    def write(self, directory: Path) -> list[Path]:
        """Write one Parquet file per table that has quarantined rows."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for table, frame in sorted(self.frames.items()):
            path = directory / f"{table}.parquet"
            frame.to_parquet(path, index=False)
            paths.append(path)
        return paths


@dataclass
class ContractData:
    """A validated contract directory.

    Small tables are pandas frames with contract columns and proper dtypes.
    The event table keeps integer positions instead of ids:

    - ``streams``: ``user_idx`` (int32), ``track_idx`` (int32), ``ts``
      (datetime64[ns, UTC]), ``ms_played`` (int64);
    - ``plays``: ``user_idx``, ``track_idx``, ``plays`` (int64).

    ``user_idx`` indexes rows of :attr:`users`, ``track_idx`` rows of :attr:`tracks`.
    """

    data_dir: Path
    labels: pd.DataFrame
    artists: pd.DataFrame
    tracks: pd.DataFrame
    users: pd.DataFrame
    editorial_seeds: pd.DataFrame
    editorial_rejections: pd.DataFrame
    opt_outs: pd.DataFrame
    artist_tags: pd.DataFrame
    streams: pd.DataFrame | None
    plays: pd.DataFrame | None
    quarantine: Quarantine
    input_rows: dict[str, int]
    sources: dict[str, str]

    @property
    def event_table(self) -> str:
        """``"streams"`` or ``"plays"``: which event table the platform provided."""
        return "streams" if self.streams is not None else "plays"

    @property
    def events(self) -> pd.DataFrame:
        ev = self.streams if self.streams is not None else self.plays
        assert ev is not None
        return ev

    def data_window(self) -> dict[str, str | None]:
        """First and last stream timestamps (ISO 8601), ``None`` for ``plays``."""
        if self.streams is None or self.streams.empty:
            return {"start": None, "end": None}
        ts = self.streams["ts"]
        return {"start": ts.min().isoformat(), "end": ts.max().isoformat()}


# --------------------------------------------------------------------------- files


def _find_file(data_dir: Path, table: str) -> Path | None:
    pq_path = data_dir / f"{table}.parquet"
    csv_path = data_dir / f"{table}.csv"
    if pq_path.exists():
        if csv_path.exists():
            logger.warning("both %s and %s exist; reading the Parquet file", pq_path, csv_path)
        return pq_path
    if csv_path.exists():
        return csv_path
    return None


def _file_columns(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        return list(pq.read_schema(path).names)
    with path.open("r", encoding="utf-8", errors="replace", newline="") as fh:
        header = fh.readline().rstrip("\r\n")
    return [c.strip().strip('"') for c in header.split(",")]


def check_directory(data_dir: Path) -> dict[str, Path]:
    """Check that required tables and columns exist, before any work.

    Returns
    -------
    dict
        Table name -> file path, for every table present.

    Raises
    ------
    MissingTable, MissingColumn, ContractError
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ContractError(f"data directory {str(data_dir)!r} does not exist")
    files: dict[str, Path] = {}
    for name, table in TABLES.items():
        path = _find_file(data_dir, name)
        if path is None:
            if table.required:
                raise MissingTable(name, f"expected {name}.parquet or {name}.csv in {data_dir}")
            continue
        present = set(_file_columns(path))
        for col in table.column_names:
            if col not in present:
                raise MissingColumn(name, col)
        files[name] = path
    events = [t for t in EVENT_TABLES if t in files]
    if len(events) != 1:
        raise ContractError(
            "exactly one of the tables 'streams' and 'plays' must be present, found "
            + (", ".join(repr(e) for e in events) if events else "neither")
        )
    return files


def _read_table(path: Path, table: Table, dictionary_ids: bool) -> pa.Table:
    """Read the contract columns of one file (extra columns are ignored)."""
    cols = list(table.column_names)
    id_cols = [c.name for c in table.columns if c.kind == "id"] if dictionary_ids else []
    if path.suffix == ".parquet":
        return pq.read_table(path, columns=cols, read_dictionary=id_cols or None)
    # CSV: read every contract column as text and parse it ourselves, so that one
    # bad cell becomes one quarantined row instead of a failed read.
    types = {
        c: (pa.dictionary(pa.int32(), pa.string()) if c in id_cols else pa.string()) for c in cols
    }
    return pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=1 << 24),
        convert_options=pacsv.ConvertOptions(
            include_columns=cols,
            column_types=types,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )


# --------------------------------------------------------------------------- parsing

# Per-row problem codes, kept as int8 so that a 30M-row table costs 30 MB to check.
OK, MISSING, BAD_TYPE, BAD_ENUM, OUT_OF_RANGE = 0, 1, 2, 3, 4
_CODE_NAMES = {
    MISSING: "missing_value",
    BAD_TYPE: "bad_type",
    BAD_ENUM: "bad_enum",
    OUT_OF_RANGE: "out_of_range",
}


def _np_bool(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Arrow boolean (nulls as False) -> numpy bool."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _as_string(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr
    return arr.cast(pa.string())


def _blank(arr: pa.ChunkedArray) -> np.ndarray:
    """Null or whitespace-only values, shape (n_rows,).

    Dictionary columns are checked on their dictionary and broadcast through
    the indices, so no per-row string is materialised.
    """
    if not pa.types.is_dictionary(arr.type):
        text = _as_string(arr)
        return _np_bool(arr.is_null()) | _np_bool(pc.equal(pc.utf8_trim_whitespace(text), ""))
    if not arr.chunks:
        return np.zeros(0, dtype=bool)
    dictionaries, offsets = _dictionaries(arr.chunks)
    per_value = _np_bool(pc.equal(pc.utf8_trim_whitespace(dictionaries), ""))
    return _through_indices(arr.chunks, offsets, per_value, fill=True)


def _parse_column(arr: pa.ChunkedArray, col: Column) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Parse one column to its contract type.

    Returns
    -------
    parsed
        The column in its target Arrow type (ids and strings may stay dictionary-encoded).
    codes
        int8 array, shape (n_rows,): ``OK`` or the problem found in each row.
    """
    n = len(arr)
    codes = np.zeros(n, dtype=np.int8)
    is_null = _np_bool(arr.is_null())

    if col.kind in ("id", "str"):
        if not col.nullable:
            codes[_blank(arr) if col.kind == "id" else is_null] = MISSING
        return (arr if pa.types.is_dictionary(arr.type) else _as_string(arr)), codes

    if col.kind == "enum":
        text = _as_string(arr)
        ok = _np_bool(pc.is_in(text, value_set=pa.array(col.values, pa.string())))
        codes[~ok] = BAD_ENUM
        codes[is_null] = OK if col.nullable else MISSING
        return text, codes

    if col.kind == "bool":
        if pa.types.is_boolean(arr.type):
            parsed = arr
        else:
            text = pc.utf8_lower(pc.utf8_trim_whitespace(_as_string(arr)))
            is_t = _np_bool(pc.is_in(text, value_set=pa.array(sorted(_TRUE))))
            is_f = _np_bool(pc.is_in(text, value_set=pa.array(sorted(_FALSE))))
            codes[~is_t & ~is_f] = BAD_TYPE
            parsed = pa.chunked_array([pa.array(is_t, pa.bool_(), mask=~(is_t | is_f))])
        codes[is_null] = OK if col.nullable else MISSING
        return parsed, codes

    if col.kind in ("int", "float") and pa.types.is_integer(arr.type):
        # Native integers (the Parquet case at scale) cannot be non-finite or
        # fractional: only the range is checked, without a float64 copy.
        for bound, compare in ((col.min_value, pc.less), (col.max_value, pc.greater)):
            if bound is not None:
                codes[_np_bool(compare(arr, bound))] = OUT_OF_RANGE
        codes[is_null] = OK if col.nullable else MISSING
        if col.kind == "int":
            return pc.cast(arr, pa.int64()), codes
        return pc.cast(arr, pa.float64()), codes

    if col.kind in ("int", "float"):
        if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
            num = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
        else:
            text = pd.Series(_as_string(arr).to_numpy(zero_copy_only=False))
            num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
        valid = np.isfinite(num)
        if col.kind == "int":
            valid &= np.floor(np.where(valid, num, 0)) == np.where(valid, num, 0)
        codes[~valid] = BAD_TYPE
        with np.errstate(invalid="ignore"):
            if col.min_value is not None:
                codes[valid & (num < col.min_value)] = OUT_OF_RANGE
            if col.max_value is not None:
                codes[valid & (num > col.max_value)] = OUT_OF_RANGE
        codes[is_null] = OK if col.nullable else MISSING
        if col.kind == "int" and pa.types.is_integer(arr.type):
            parsed = pc.cast(arr, pa.int64())
        elif col.kind == "int":
            ints = np.where(valid, num, 0).astype(np.int64)
            parsed = pa.chunked_array([pa.array(ints, mask=~valid)])
        else:
            parsed = pa.chunked_array([pa.array(num, type=pa.float64(), mask=~valid)])
        return parsed, codes

    if col.kind in ("date", "timestamp"):
        if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
            if col.kind == "timestamp":
                if pa.types.is_date(arr.type):
                    arr = pc.cast(arr, pa.timestamp("s"))
                if arr.type.tz is None:
                    # The contract says timestamps are UTC; a naive one is read as such.
                    arr = pc.assume_timezone(arr, "UTC")
                parsed = pc.cast(arr, pa.timestamp("ns", tz="UTC"))
            elif pa.types.is_date(arr.type):
                parsed = pc.cast(arr, pa.date32())
            else:
                if arr.type.tz is not None:
                    arr = pc.cast(arr, pa.timestamp(arr.type.unit))
                parsed = pc.cast(pc.floor_temporal(arr, unit="day"), pa.date32())
        else:
            text = pd.Series(_as_string(arr).to_numpy(zero_copy_only=False))
            ts = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
            codes[ts.isna().to_numpy()] = BAD_TYPE
            if col.kind == "timestamp":
                parsed = pa.chunked_array([pa.array(ts.astype("datetime64[ns, UTC]"))])
            else:
                day = ts.dt.tz_localize(None).dt.normalize().astype("datetime64[ms]")
                parsed = pc.cast(pa.chunked_array([pa.array(day)]), pa.date32())
        codes[is_null] = OK if col.nullable else MISSING
        return parsed, codes

    raise AssertionError(f"unhandled column kind {col.kind}")  # pragma: no cover


# --------------------------------------------------------------------------- validation


def _lookup(arr: pa.ChunkedArray, ref: pa.Array) -> np.ndarray:
    """Position of each value of ``arr`` in ``ref``; -1 where absent or null.

    Dictionary-encoded columns are resolved through their (small) dictionaries,
    which makes this fast for event tables with tens of millions of rows. All
    the chunks' dictionaries go through one ``index_in`` call: each call builds
    a hash table of ``ref`` (hundreds of thousands of ids), and a Parquet event
    table arrives in hundreds of chunks (measured at ``large``: 37 s per-chunk,
    a few seconds at once).
    """
    chunks = arr.chunks
    if not chunks:
        return np.zeros(0, dtype=np.int64)
    if not pa.types.is_dictionary(arr.type):
        pos = pc.index_in(_as_string(arr), value_set=ref)
        return np.asarray(pc.fill_null(pos, -1).to_numpy(zero_copy_only=False), np.int64)
    dictionaries, offsets = _dictionaries(chunks)
    pos_all = pc.index_in(dictionaries, value_set=ref)
    pos_np = np.asarray(pc.fill_null(pos_all, -1).to_numpy(zero_copy_only=False), np.int64)
    return _through_indices(chunks, offsets, pos_np, fill=-1)


def _dictionaries(chunks: list[pa.DictionaryArray]) -> tuple[pa.Array, np.ndarray]:
    """The chunks' distinct dictionaries as one string array, and each chunk's start in it.

    A Parquet file written from a categorical column repeats the whole
    dictionary in every chunk (at ``large``: 233 chunks of the same 361,557
    user ids), so a chunk whose dictionary equals the previous one reuses its
    entries rather than adding them again.

    Returns
    -------
    dictionaries
        Shape (sum of the distinct dictionaries' sizes,).
    offsets
        int64, shape (n_chunks,).
    """
    dicts: list[pa.Array] = []
    offsets = np.zeros(len(chunks), dtype=np.int64)
    total = 0
    prev: pa.Array | None = None
    for i, chunk in enumerate(chunks):
        d = chunk.dictionary
        if prev is not None and (d is prev or (len(d) == len(prev) and d.equals(prev))):
            offsets[i] = offsets[i - 1]
            continue
        dicts.append(d.cast(pa.string()))
        offsets[i] = total
        total += len(d)
        prev = d
    return (pa.concat_arrays(dicts) if dicts else pa.array([], pa.string())), offsets


def _through_indices(
    chunks: list[pa.DictionaryArray], offsets: np.ndarray, per_value: np.ndarray, fill: Any
) -> np.ndarray:
    """Broadcast a value computed per dictionary entry to the rows; ``fill`` on nulls.

    Parameters
    ----------
    chunks
        Dictionary chunks of one column.
    offsets
        Start of each chunk's dictionary in ``per_value``, shape (n_chunks,).
    per_value
        One value per entry of the concatenated dictionaries.

    Returns
    -------
    ndarray
        Shape (n_rows,), dtype of ``per_value``.
    """
    out = np.empty(sum(len(c) for c in chunks), dtype=per_value.dtype)
    start = 0
    for chunk, offset in zip(chunks, offsets.tolist(), strict=True):
        stop = start + len(chunk)
        if len(chunk.dictionary):
            idx = np.asarray(pc.fill_null(chunk.indices, 0).to_numpy(zero_copy_only=False))
            out[start:stop] = per_value[offset + idx.astype(np.int64)]
        else:
            out[start:stop] = fill
        if chunk.null_count:
            out[start:stop][_np_bool(chunk.is_null())] = fill
        start = stop
    return out


def _raw_rows(raw: pa.Table, rows: np.ndarray) -> pd.DataFrame:
    """The original values of some rows, as strings, for the quarantine file."""
    sub = raw.take(pa.array(rows, pa.int64()))
    out = {}
    for name in sub.column_names:
        col = sub.column(name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(pa.string())
        out[name] = pc.cast(col, pa.string()).to_pylist()
    return pd.DataFrame(out)


@dataclass
class _Validated:
    parsed: dict[str, pa.ChunkedArray]  # every row, parsed (bad rows included)
    rows: np.ndarray  # original row numbers of the good rows
    positions: dict[str, np.ndarray]  # foreign-key positions for the good rows
    keep: np.ndarray | None  # boolean mask of the good rows; None when all are good

    def column(self, name: str) -> pa.ChunkedArray:
        """The good rows of one parsed column (taken on demand: an event table
        needs only a few of its 30M-row columns)."""
        if self.keep is None:
            return self.parsed[name]
        return self.parsed[name].filter(pa.array(self.keep))


def _validate(
    name: str,
    raw: pa.Table,
    refs: dict[str, pa.Array],
    quarantine: Quarantine,
) -> _Validated:
    """Type-check, key-check and reference-check one table; quarantine the bad rows."""
    table = TABLES[name]
    n = raw.num_rows
    # reason[i] = index into `labels` of the first problem found in row i (0: none).
    labels = [""]
    reason = np.zeros(n, dtype=np.int16)
    parsed: dict[str, pa.ChunkedArray] = {}

    def mark(mask: np.ndarray, label: str) -> None:
        new = mask & (reason == 0)  # the first reason found for a row is the one recorded
        if new.any():
            labels.append(label)
            reason[new] = len(labels) - 1

    for col in table.columns:
        values, codes = _parse_column(raw.column(col.name), col)
        parsed[col.name] = values
        for code, code_name in _CODE_NAMES.items():
            mark(codes == code, f"{code_name}:{col.name}")

    positions: dict[str, np.ndarray] = {}
    for fk in table.foreign_keys:
        ref = refs.get(fk.ref_table)
        if ref is None:
            continue
        pos = _lookup(parsed[fk.column], ref)
        unknown = pos < 0
        if fk.nullable:
            unknown &= ~_np_bool(parsed[fk.column].is_null())
        mark(unknown, f"unknown_reference:{fk.column}")
        positions[fk.column] = pos

    if table.key:
        key_frame = pd.DataFrame(
            {
                c: (
                    positions[c]
                    if c in positions
                    else parsed[c].cast(pa.string()).to_numpy(zero_copy_only=False)
                )
                for c in table.key
            }
        )
        # Only rows that passed the other checks compete for a key: a bad row
        # must not push a later good row with the same key into quarantine.
        dup = np.zeros(n, dtype=bool)
        ok_rows = np.flatnonzero(reason == 0)
        dup[ok_rows] = key_frame.iloc[ok_rows].duplicated(keep="first").to_numpy()
        mark(dup, "duplicate_key")

    bad_rows = np.flatnonzero(reason)
    if len(bad_rows):
        frame = _raw_rows(raw, bad_rows)
        frame.insert(0, "reason", np.asarray(labels, dtype=object)[reason[bad_rows]])
        frame.insert(0, "row", bad_rows.astype(np.int64))
        quarantine.add(name, frame)
        logger.warning("%s: %d of %d rows quarantined", name, len(bad_rows), n)

    keep = reason == 0
    good = np.flatnonzero(keep)
    if len(good) == n:
        return _Validated(parsed, good, positions, None)
    return _Validated(parsed, good, {k: v[good] for k, v in positions.items()}, keep)


def _to_frame(name: str, v: _Validated) -> pd.DataFrame:
    table = TABLES[name]
    data = {}
    for col in table.columns:
        arr = v.column(col.name)
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(pa.string())
        if col.kind in ("id", "str", "enum"):
            data[col.name] = pd.Series(arr.to_numpy(zero_copy_only=False), dtype=object)
        elif col.kind == "bool":
            data[col.name] = pd.Series(arr.to_numpy(zero_copy_only=False)).astype(bool)
        elif col.kind == "int":
            data[col.name] = pd.Series(arr.to_numpy(zero_copy_only=False), dtype="int64")
        elif col.kind == "float":
            data[col.name] = pd.Series(arr.to_numpy(zero_copy_only=False), dtype="float64")
        elif col.kind == "timestamp":
            data[col.name] = pd.Series(arr.to_pandas()).astype("datetime64[ns, UTC]")
        elif col.kind == "date":
            data[col.name] = pd.to_datetime(pd.Series(arr.to_pandas()))
    return pd.DataFrame(data)


def _empty_frame(name: str) -> pd.DataFrame:
    table = TABLES[name]
    dtypes = {
        "id": object,
        "str": object,
        "enum": object,
        "bool": bool,
        "int": "int64",
        "float": "float64",
        "timestamp": "datetime64[ns, UTC]",
        "date": "datetime64[ns]",
    }
    return pd.DataFrame({c.name: pd.Series([], dtype=dtypes[c.kind]) for c in table.columns})


def load_contract(data_dir: str | Path) -> ContractData:
    """Read and validate a contract directory.

    Parameters
    ----------
    data_dir
        Directory with one file per table (``NAME.parquet`` or ``NAME.csv``).

    Returns
    -------
    ContractData
        Validated tables, the quarantine and input row counts.

    Raises
    ------
    MissingTable, MissingColumn
        A required table or column is absent (checked before any work).
    ContractError
        Neither or both of ``streams`` and ``plays`` are present.
    """
    data_dir = Path(data_dir)
    files = check_directory(data_dir)
    quarantine = Quarantine()
    input_rows: dict[str, int] = {}
    refs: dict[str, pa.Array] = {}
    frames: dict[str, pd.DataFrame] = {}
    events: dict[str, pd.DataFrame] = {}

    for name in TABLES:  # dependency order: references are validated first
        if name not in files:
            frames[name] = _empty_frame(name)
            continue
        t0 = time.perf_counter()
        is_event = name in EVENT_TABLES
        raw = _read_table(files[name], TABLES[name], dictionary_ids=is_event)
        input_rows[name] = raw.num_rows
        v = _validate(name, raw, refs, quarantine)
        del raw
        if is_event:
            ev = {
                "user_idx": v.positions["user_id"].astype(np.int32),
                "track_idx": v.positions["track_id"].astype(np.int32),
            }
            if name == "streams":
                ev["ts"] = v.column("ts").to_pandas().astype("datetime64[ns, UTC]").array
                ev["ms_played"] = v.column("ms_played").to_numpy().astype(np.int64)
            else:
                ev["plays"] = v.column("plays").to_numpy().astype(np.int64)
            events[name] = pd.DataFrame(ev)
        else:
            frames[name] = _to_frame(name, v)
            key = TABLES[name].key
            if len(key) == 1:
                refs[name] = pa.array(frames[name][key[0]].to_numpy(), pa.string())
        logger.info(
            "loaded %s: %d rows (%d quarantined) in %.2fs",
            name,
            input_rows[name],
            input_rows[name] - len(v.rows),
            time.perf_counter() - t0,
        )

    return ContractData(
        data_dir=data_dir,
        labels=frames["labels"],
        artists=frames["artists"],
        tracks=frames["tracks"],
        users=frames["users"],
        editorial_seeds=frames["editorial_seeds"],
        editorial_rejections=frames["editorial_rejections"],
        opt_outs=frames["opt_outs"],
        artist_tags=frames["artist_tags"],
        streams=events.get("streams"),
        plays=events.get("plays"),
        quarantine=quarantine,
        input_rows=input_rows,
        sources={k: str(v.name) for k, v in files.items()},
    )
