"""Human review of learned relations: export suggestions, import editors' decisions.

``export_review`` writes the strongest learned relations of an artifact that
no editor has decided on yet, one undirected pair per row, with the evidence
an editor needs (shared listeners, vector similarity, distance to the
editorial graph) and empty ``decision``, ``editor``, ``decided_at`` and
``note`` columns to fill in.

``import_review`` applies a filled-in file to a contract directory:

- ``approve``: the pair is appended to ``editorial_seeds`` (editor and
  decision time as ``editor`` and ``created_at``), so the next training
  treats it as an editorial seed;
- ``reject``: the pair is appended to ``editorial_rejections``, so it never
  appears again, learned or not;
- every decision is appended to the review log ``graph_reviews.parquet`` in
  the same directory (not a contract table: the loader ignores it). The
  graph stage reads it to give approved seeds the provenance
  ``learned, reviewed`` instead of ``editorial``; without the log they
  would simply be editorial seeds.

Rows with an empty decision are left for later. The contract files keep
their format (Parquet or CSV) and are replaced atomically.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.errors import RecsysError

logger = logging.getLogger(__name__)

#: The review log, kept next to the contract tables of a data directory.
REVIEW_LOG = "graph_reviews.parquet"
#: Columns of an export file, in order.
EXPORT_COLUMNS = (
    "artist_id",
    "artist_name",
    "similar_artist_id",
    "similar_artist_name",
    "score",
    "learned_score",
    "shared_listeners",
    "vector_similarity",
    "walk_score",
    "artist_seed_distance",
    "similar_artist_seed_distance",
    "model_version",
    "decision",
    "editor",
    "decided_at",
    "note",
)
#: Columns of the review log.
LOG_COLUMNS = (
    "artist_id",
    "similar_artist_id",
    "decision",
    "editor",
    "decided_at",
    "note",
    "model_version",
    "score",
    "shared_listeners",
    "vector_similarity",
)
_DECISIONS = {
    "approve": "approve",
    "approved": "approve",
    "accept": "approve",
    "yes": "approve",
    "reject": "reject",
    "rejected": "reject",
    "refuse": "reject",
    "refused": "reject",
    "no": "reject",
}


class ReviewError(RecsysError):
    """A review file cannot be applied (bad decision, unknown artist, no editor, ...)."""


@dataclass(frozen=True)
class ImportReport:
    """What an import changed: pairs approved, rejected, left undecided, already known."""

    approved: int
    rejected: int
    undecided: int
    already_decided: int

    def to_dict(self) -> dict[str, int]:
        return {
            "approved": self.approved,
            "rejected": self.rejected,
            "undecided": self.undecided,
            "already_decided": self.already_decided,
        }


def _pair_key(a: pd.Series, b: pd.Series) -> pd.Series:
    """Undirected pair key ``"lo|hi"``."""
    a, b = a.astype(str), b.astype(str)
    lo = a.where(a < b, b)
    hi = b.where(a < b, a)
    return lo + "|" + hi


def read_review_log(data_dir: str | Path) -> pd.DataFrame:
    """The review log of a data directory (empty frame when there is none)."""
    path = Path(data_dir) / REVIEW_LOG
    if not path.exists():
        return pd.DataFrame(columns=list(LOG_COLUMNS))
    return pd.read_parquet(path)


def export_review(artifact: str | Path, out: str | Path, n: int = 200) -> pd.DataFrame:
    """Write the ``n`` strongest undecided learned relations of an artifact as CSV.

    Parameters
    ----------
    artifact
        Artifact directory (or a directory of artifacts: the newest).
    out
        CSV file to write.
    n
        Most pairs to export.

    Returns
    -------
    pandas.DataFrame
        What was written, columns :data:`EXPORT_COLUMNS`.
    """
    from recsys.artifact.store import read_manifest, resolve_artifact

    path = resolve_artifact(artifact)
    manifest = read_manifest(path)
    rel_path = path / "graph/relations.parquet"
    if not rel_path.exists():
        raise ReviewError(f"{path}: artifact has no similar-artist graph")
    rel = pd.read_parquet(rel_path)
    rel = rel.loc[rel["provenance"] == "learned"].copy()
    rel["pair"] = _pair_key(rel["artist_id"], rel["similar_artist_id"])
    decided: set[str] = set()
    for name in (
        "editorial/seeds.parquet",
        "editorial/rejections.parquet",
        "graph/reviews.parquet",
    ):
        p = path / name
        if p.exists():
            f = pd.read_parquet(p)
            if len(f):
                decided |= set(_pair_key(f["artist_id"], f["similar_artist_id"]))
    rel = rel.loc[~rel["pair"].isin(decided)]
    # One row per undirected pair: its stronger direction.
    rel = rel.sort_values(["score", "learned_score", "pair"], ascending=[False, False, True])
    rel = rel.drop_duplicates("pair").head(int(n))
    artists = pd.read_parquet(path / "catalogue/artists.parquet").set_index("artist_id")["name"]
    dist = pd.read_parquet(path / "graph/artists.parquet").set_index("artist_id")["seed_distance"]
    export = pd.DataFrame(
        {
            "artist_id": rel["artist_id"].to_numpy(),
            "artist_name": artists.reindex(rel["artist_id"]).to_numpy(),
            "similar_artist_id": rel["similar_artist_id"].to_numpy(),
            "similar_artist_name": artists.reindex(rel["similar_artist_id"]).to_numpy(),
            "score": rel["score"].round(4).to_numpy(),
            "learned_score": rel["learned_score"].round(4).to_numpy(),
            "shared_listeners": rel["shared_listeners"].to_numpy(),
            "vector_similarity": rel["vector_similarity"].round(4).to_numpy(),
            "walk_score": rel["walk_score"].round(6).to_numpy(),
            "artist_seed_distance": dist.reindex(rel["artist_id"]).to_numpy(),
            "similar_artist_seed_distance": dist.reindex(rel["similar_artist_id"]).to_numpy(),
            "model_version": manifest["version"],
            "decision": "",
            "editor": "",
            "decided_at": "",
            "note": "",
        },
        columns=list(EXPORT_COLUMNS),
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    export.to_csv(out, index=False)
    logger.info("exported %d learned relations for review to %s", len(export), out)
    return export


def _table_path(data_dir: Path, name: str) -> Path | None:
    for suffix in (".parquet", ".csv"):
        p = data_dir / f"{name}{suffix}"
        if p.exists():
            return p
    return None


def _read_table(path: Path | None) -> pd.DataFrame:
    if path is None:
        return pd.DataFrame(columns=["artist_id", "similar_artist_id", "editor", "created_at"])
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.part")
    if path.suffix == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def _append(existing: pd.DataFrame, new: pd.DataFrame, csv: bool) -> pd.DataFrame:
    """Existing contract rows plus new ones, with the contract's column types."""
    if csv:
        new = new.assign(created_at=new["created_at"].map(lambda t: t.isoformat()))
        return pd.concat([existing, new.astype(str)], ignore_index=True)
    frames = []
    for f in (existing, new):
        f = f.copy()
        f["created_at"] = pd.to_datetime(f["created_at"], utc=True, errors="coerce")
        for c in ("artist_id", "similar_artist_id", "editor"):
            f[c] = f[c].astype(object)
        frames.append(f)
    return pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)


def import_review(
    review_file: str | Path, data_dir: str | Path, *, now: dt.datetime | None = None
) -> ImportReport:
    """Apply editors' decisions to a contract directory.

    Parameters
    ----------
    review_file
        CSV with at least ``artist_id``, ``similar_artist_id``, ``decision``
        (``approve`` or ``reject``; empty: undecided) and ``editor``;
        optional ``decided_at`` (ISO 8601; empty: now) and ``note``.
    data_dir
        Contract directory whose ``editorial_seeds`` and
        ``editorial_rejections`` receive the decisions.
    now
        Time recorded for decisions without ``decided_at`` (default: now, UTC).

    Returns
    -------
    ImportReport

    Raises
    ------
    ReviewError
        Missing columns, an unknown decision, a decision without editor, an
        unknown artist, or one pair both approved and rejected. Nothing is
        written then.
    """
    data_dir = Path(data_dir)
    now = now or dt.datetime.now(dt.UTC)
    try:
        rows = pd.read_csv(review_file, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise ReviewError(f"cannot read review file {review_file}: {exc}") from exc
    missing = {"artist_id", "similar_artist_id", "decision", "editor"} - set(rows.columns)
    if missing:
        raise ReviewError(f"{review_file}: missing column(s) {sorted(missing)}")
    for c in ("decided_at", "note", "model_version", "score"):
        if c not in rows.columns:
            rows[c] = ""
    raw = rows["decision"].str.strip().str.lower()
    undecided = raw == ""
    decision = raw.map(_DECISIONS)
    bad = ~undecided & decision.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ReviewError(
            f"{review_file}: line {i + 2}: decision {rows['decision'].iloc[i]!r} "
            "is neither approve nor reject"
        )
    rows = rows.loc[~undecided].assign(decision=decision[~undecided])
    rows["editor"] = rows["editor"].str.strip()
    if (rows["editor"] == "").any():
        i = rows.index[rows["editor"] == ""][0]
        raise ReviewError(f"{review_file}: line {i + 2}: a decision needs an editor")
    stamp = pd.to_datetime(rows["decided_at"].replace("", None), utc=True, errors="coerce")
    unparsable = stamp.isna() & (rows["decided_at"].str.strip() != "")
    if unparsable.any():
        i = rows.index[unparsable][0]
        raise ReviewError(f"{review_file}: line {i + 2}: unparsable decided_at")
    stamp = stamp.astype("datetime64[us, UTC]")
    when = pd.Timestamp(now)
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    rows["decided_at"] = stamp.fillna(when.as_unit("us"))

    artists_path = _table_path(data_dir, "artists")
    if artists_path is None:
        raise ReviewError(f"{data_dir}: no artists table")
    known = set(_read_table(artists_path)["artist_id"].astype(str))
    unknown = ~rows["artist_id"].isin(known) | ~rows["similar_artist_id"].isin(known)
    if unknown.any():
        i = rows.index[unknown][0]
        raise ReviewError(f"{review_file}: line {i + 2}: unknown artist")
    rows["pair"] = _pair_key(rows["artist_id"], rows["similar_artist_id"])
    conflict = rows.groupby("pair")["decision"].nunique() > 1
    if conflict.any():
        raise ReviewError(
            f"{review_file}: pair {conflict[conflict].index[0]} approved and rejected"
        )
    rows = rows.drop_duplicates("pair", keep="last")

    seeds_path = _table_path(data_dir, "editorial_seeds")
    rej_path = _table_path(data_dir, "editorial_rejections")
    seeds = _read_table(seeds_path)
    rejections = _read_table(rej_path)
    in_seeds = (
        set(_pair_key(seeds["artist_id"], seeds["similar_artist_id"])) if len(seeds) else set()
    )
    in_rej = (
        set(_pair_key(rejections["artist_id"], rejections["similar_artist_id"]))
        if len(rejections)
        else set()
    )
    approve = rows.loc[(rows["decision"] == "approve") & ~rows["pair"].isin(in_seeds | in_rej)]
    reject = rows.loc[(rows["decision"] == "reject") & ~rows["pair"].isin(in_rej)]
    already = len(rows) - len(approve) - len(reject)

    def contract_rows(f: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "artist_id": f["artist_id"].to_numpy(),
                "similar_artist_id": f["similar_artist_id"].to_numpy(),
                "editor": f["editor"].to_numpy(),
                "created_at": f["decided_at"].to_numpy(),
            }
        )

    # Seeds go in the seeds' format; a new rejections table follows the seeds'.
    seeds_fmt = seeds_path or (data_dir / "editorial_seeds.parquet")
    rej_target = rej_path or data_dir / f"editorial_rejections{seeds_fmt.suffix}"
    if len(approve):
        new = _append(seeds, contract_rows(approve), seeds_fmt.suffix == ".csv")
        _write_atomic(new, seeds_fmt)
    if len(reject):
        new = _append(rejections, contract_rows(reject), rej_target.suffix == ".csv")
        _write_atomic(new, rej_target)

    log = pd.DataFrame(
        {
            "artist_id": rows["artist_id"].astype(str).to_numpy(),
            "similar_artist_id": rows["similar_artist_id"].astype(str).to_numpy(),
            "decision": rows["decision"].astype(str).to_numpy(),
            "editor": rows["editor"].astype(str).to_numpy(),
            "decided_at": pd.to_datetime(rows["decided_at"], utc=True).to_numpy(),
            "note": rows["note"].astype(str).to_numpy(),
            "model_version": rows["model_version"].astype(str).to_numpy(),
            "score": pd.to_numeric(rows["score"], errors="coerce").to_numpy(),
            "shared_listeners": pd.to_numeric(
                rows.get("shared_listeners", pd.Series("", index=rows.index)), errors="coerce"
            ).to_numpy(),
            "vector_similarity": pd.to_numeric(
                rows.get("vector_similarity", pd.Series("", index=rows.index)), errors="coerce"
            ).to_numpy(),
        },
        columns=list(LOG_COLUMNS),
    )
    if len(log):
        old = read_review_log(data_dir)
        merged = pd.concat([f for f in (old, log) if len(f)], ignore_index=True)
        merged["decided_at"] = pd.to_datetime(merged["decided_at"], utc=True)
        _write_atomic(merged, data_dir / REVIEW_LOG)
    report = ImportReport(
        approved=len(approve),
        rejected=len(reject),
        undecided=int(undecided.sum()),
        already_decided=already,
    )
    logger.info("imported review %s into %s: %s", review_file, data_dir, report.to_dict())
    return report
