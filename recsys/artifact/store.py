"""Artifacts: one directory per training run, written atomically, checked on load.

A run writes into a hidden temporary directory beside its destination and
renames it into place only once every file and the manifest (with a SHA-256
of every file) are on disk. A crash therefore never leaves a half-written
artifact where a server could find it, and a server refuses any artifact
whose files do not match its manifest.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recsys.errors import ArtifactError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
#: Answers stored at publish time (:mod:`recsys.retrieval.answers`), under ``index/``.
USER_ANSWERS_FILE = "user_track.user_answers.npz"
ARTIST_ANSWERS_FILE = "item_item.artist_answers.npz"
_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def new_version(now: dt.datetime | None = None) -> str:
    """A sortable, unique artifact version such as ``20261121T103000Z-1a2b3c``."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem allows it
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def destination_for(out: Path, version: str) -> Path:
    """Where ``recsys train --out OUT`` publishes.

    ``OUT`` that does not exist, or is itself an artifact, becomes (or is
    replaced by) the artifact. An existing directory that is not an artifact
    is a directory of artifacts: the run goes to ``OUT/<version>``.
    """
    out = Path(out)
    if not out.exists() or (out / MANIFEST).exists():
        return out
    if not out.is_dir():
        raise ArtifactError(f"{out} exists and is not a directory")
    return out / version


@contextlib.contextmanager
def atomic_directory(dest: Path) -> Iterator[Path]:
    """Yield a temporary directory that is renamed to ``dest`` on success.

    On an exception the temporary directory is removed and ``dest`` is left
    as it was. An existing ``dest`` is moved aside, replaced, then removed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f"{_TMP_PREFIX}{dest.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if dest.exists():
        old = dest.parent / f"{_OLD_PREFIX}{dest.name}-{uuid.uuid4().hex[:8]}"
        os.rename(dest, old)
    os.rename(tmp, dest)
    _fsync_dir(dest.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_manifest(directory: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Checksum every file under ``directory`` and write ``manifest.json`` last."""
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel == MANIFEST:
            continue
        files[rel] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    manifest = {**manifest, "format": FORMAT_VERSION, "files": files}
    tmp = directory / (MANIFEST + ".part")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False, default=str))
    os.replace(tmp, directory / MANIFEST)
    return manifest


def read_manifest(directory: Path, *, verify: bool = True) -> dict[str, Any]:
    """Read and (by default) verify an artifact's manifest against its files.

    Raises
    ------
    ArtifactError
        No manifest, unreadable manifest, unknown format, or a file missing,
        of the wrong size or with the wrong checksum.
    """
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{directory} is not an artifact: no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable manifest ({exc})") from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: unsupported artifact format {manifest.get('format')!r}")
    if not isinstance(manifest.get("files"), dict) or not manifest.get("version"):
        raise ArtifactError(f"{path}: manifest lacks files or version")
    if verify:
        for rel, meta in manifest["files"].items():
            f = directory / rel
            if not f.is_file():
                raise ArtifactError(f"{directory}: file {rel} listed in the manifest is missing")
            if f.stat().st_size != meta["bytes"]:
                raise ArtifactError(f"{directory}: file {rel} has the wrong size")
            if _sha256(f) != meta["sha256"]:
                raise ArtifactError(f"{directory}: file {rel} fails its checksum")
    return manifest


def resolve_artifact(path: str | Path) -> Path:
    """The artifact at ``path``, or the newest complete one inside it.

    "Complete" means a readable manifest; the newest is the one with the
    latest ``created_at``. Temporary and replaced directories are ignored.

    Raises
    ------
    ArtifactError
        Nothing that looks like an artifact is there.
    """
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    if not path.is_dir():
        raise ArtifactError(f"no artifact at {path}")
    candidates = []
    for child in path.iterdir():
        if child.name.startswith((_TMP_PREFIX, _OLD_PREFIX)) or not child.is_dir():
            continue
        try:
            m = read_manifest(child, verify=False)
        except ArtifactError:
            continue
        candidates.append((str(m.get("created_at", "")), child.name, child))
    if not candidates:
        raise ArtifactError(f"no complete artifact in {path}")
    return max(candidates)[2]
