from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys.artifact.store import (
    MANIFEST,
    atomic_directory,
    destination_for,
    read_manifest,
    resolve_artifact,
    write_manifest,
)
from recsys.errors import ArtifactError


def _publish(dest: Path, version: str, created_at: str, payload: bytes = b"x") -> Path:
    with atomic_directory(dest) as tmp:
        (tmp / "model").mkdir()
        (tmp / "model/data.bin").write_bytes(payload)
        write_manifest(tmp, {"version": version, "created_at": created_at})
    return dest


def test_atomic_publish_and_verify(tmp_path: Path) -> None:
    dest = _publish(tmp_path / "a", "v1", "2026-01-01T00:00:00+00:00")
    m = read_manifest(dest)
    assert m["files"]["model/data.bin"]["bytes"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no temporary left behind


def test_crash_leaves_nothing_and_keeps_previous(tmp_path: Path) -> None:
    dest = _publish(tmp_path / "a", "v1", "2026-01-01T00:00:00+00:00", b"old")
    with pytest.raises(RuntimeError), atomic_directory(dest) as tmp:
        (tmp / "half").write_bytes(b"half-written")
        raise RuntimeError("crash")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    assert (dest / "model/data.bin").read_bytes() == b"old"
    _publish(dest, "v2", "2026-01-02T00:00:00+00:00", b"new")
    assert read_manifest(dest)["version"] == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest"])
def test_broken_artifact_is_refused(tmp_path: Path, damage: str) -> None:
    dest = _publish(tmp_path / "a", "v1", "2026-01-01T00:00:00+00:00", b"abcdef")
    f = dest / "model/data.bin"
    if damage == "truncate":
        f.write_bytes(b"abc")
    elif damage == "flip":
        f.write_bytes(b"abcdeX")
    elif damage == "delete":
        f.unlink()
    else:
        (dest / MANIFEST).write_text("{not json")
    with pytest.raises(ArtifactError):
        read_manifest(dest)


def test_resolve_newest_complete(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    root.mkdir()
    _publish(root / "old", "v1", "2026-01-01T00:00:00+00:00")
    _publish(root / "new", "v2", "2026-03-01T00:00:00+00:00")
    (root / "incomplete").mkdir()  # no manifest: never chosen
    (root / ".tmp-x").mkdir()
    (root / ".tmp-x" / MANIFEST).write_text(json.dumps({"created_at": "2099"}))
    assert resolve_artifact(root).name == "new"
    assert resolve_artifact(root / "old").name == "old"
    with pytest.raises(ArtifactError):
        resolve_artifact(tmp_path / "nothing")


def test_destination_rules(tmp_path: Path) -> None:
    assert destination_for(tmp_path / "fresh", "v") == tmp_path / "fresh"
    _publish(tmp_path / "art", "v1", "2026")
    assert destination_for(tmp_path / "art", "v") == tmp_path / "art"
    (tmp_path / "many").mkdir()
    assert destination_for(tmp_path / "many", "v9") == tmp_path / "many" / "v9"
