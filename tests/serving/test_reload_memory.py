"""Reloads: the old artifact's memory goes back to the OS; loading uses short GIL slices."""

from __future__ import annotations

import gc
import sys
import threading
import weakref
from pathlib import Path

import pytest

import serving.holder as holder_module
from recsys.errors import ArtifactError
from recsys.state import StateStore
from recsys.synth.artifact import SyntheticSpec, publish_synthetic_artifact
from serving.holder import EngineHolder, release_memory

SPEC = SyntheticSpec(n_pool_tracks=300, n_artists=20, n_users=30, factors=8, n_styles=3)


def test_old_artifact_memory_is_released_after_reload(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "artifacts"
    root.mkdir()
    first = publish_synthetic_artifact(root / "a", SPEC)
    holder = EngineHolder(StateStore(tmp_path / "state.sqlite"), root)
    holder.load_initial()
    assert holder.engine is not None and holder.engine.version == first["version"]
    in_flight = holder.current()  # a request still using the old engine

    calls: list[int] = []
    monkeypatch.setattr(holder_module, "_release_soon", lambda *args: calls.append(1))
    second = publish_synthetic_artifact(root / "b", SPEC)
    changed, engine = holder.reload()
    assert changed and engine.version == second["version"]
    gc.collect()
    assert calls == []  # the old artifact is still in use
    del in_flight
    gc.collect()
    assert calls == [1]
    release_memory()  # and the release itself works on this platform


def test_service_puts_arrow_memory_where_release_memory_trims(tmp_path: Path) -> None:
    """Arrow's own pool kept about 250 MB of every reload on the 1M pool; the service avoids it."""
    import pyarrow as pa
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import ServiceSettings

    artifact = tmp_path / "a"
    publish_synthetic_artifact(artifact, SPEC)
    before = pa.default_memory_pool()
    try:
        pa.set_memory_pool(pa.mimalloc_memory_pool())  # the wheels' default
        settings = ServiceSettings(artifact=artifact, state_path=tmp_path / "state.sqlite")
        with TestClient(create_app(settings)) as client:
            assert client.get("/readyz").status_code == 200
            assert pa.default_memory_pool().backend_name == "system"
    finally:
        pa.set_memory_pool(before)


def _serving_a_with_b_published(tmp_path: Path) -> tuple[EngineHolder, Path]:
    """A holder serving artifact ``a`` of a directory where ``b`` has just been published."""
    root = tmp_path / "artifacts"
    root.mkdir()
    publish_synthetic_artifact(root / "a", SPEC)
    holder = EngineHolder(StateStore(tmp_path / "state.sqlite"), root)
    holder.load_initial()
    publish_synthetic_artifact(root / "b", SPEC)
    return holder, root


def test_reload_loads_with_short_gil_slices_and_restores_them(tmp_path: Path, monkeypatch) -> None:
    holder, root = _serving_a_with_b_published(tmp_path)
    seen: list[float] = []
    real_load = EngineHolder._load

    def load(*args, **kwargs):
        seen.append(sys.getswitchinterval())
        return real_load(*args, **kwargs)

    monkeypatch.setattr(EngineHolder, "_load", load)
    before = sys.getswitchinterval()
    changed, _ = holder.reload()
    assert changed and seen == [holder_module.RELOAD_SWITCH_INTERVAL_S]
    assert sys.getswitchinterval() == before
    # Restored after a refused reload too.
    monkeypatch.setattr(
        EngineHolder, "_load", lambda *a, **k: (_ for _ in ()).throw(ArtifactError("x"))
    )
    publish_synthetic_artifact(root / "d", SPEC)
    with pytest.raises(ArtifactError):
        holder.reload()
    assert sys.getswitchinterval() == before


def test_a_reload_hands_memory_back_before_building_the_engine(tmp_path: Path, monkeypatch) -> None:
    """Read artifact, release, build engine, release: the reload's peak excludes the read buffers."""
    holder, root = _serving_a_with_b_published(tmp_path)
    events: list[str] = []
    real_engine = holder_module.Engine

    def engine(*args, **kwargs):
        events.append("engine")
        return real_engine(*args, **kwargs)

    monkeypatch.setattr(holder_module, "release_memory", lambda: events.append("release"))
    monkeypatch.setattr(holder_module, "Engine", engine)
    changed, served = holder.reload()
    assert changed and served.artifact.path.name == "b"
    assert events == ["release", "engine", "release"]


_FREED_ARRAYS = """
import sys
import numpy as np
from serving.holder import map_large_allocations

def anon_mib():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon"):
            return int(line.split()[1]) / 1024

print(map_large_allocations(int(sys.argv[1])))
big = np.ones(16 * 2**20 // 8)
del big  # glibc's adaptive threshold rises to 16 MiB here
arrays, pins = [], []
for _ in range(60):  # 180 MiB of 3 MiB arrays, a smaller live block after each
    arrays.append(np.ones(3 * 2**20 // 8))
    pins.append(bytearray(512 * 1024))  # glibc heap, too large for earlier holes
before = anon_mib()
del arrays  # an old artifact's arrays, freed before the next release_memory()
print(before - anon_mib())
"""


@pytest.mark.skipif(
    holder_module._LIBC is None or not Path("/proc/self/status").exists(), reason="glibc, Linux"
)
def test_large_arrays_freed_leave_at_once_with_a_fixed_mmap_threshold() -> None:
    import os
    import subprocess

    def freed(threshold: int) -> tuple[bool, float]:
        out = subprocess.run(
            [sys.executable, "-c", _FREED_ARRAYS, str(threshold)],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
        )
        assert out.returncode == 0, out.stderr[-2000:]
        was_set, mib = out.stdout.split()
        return was_set == "True", float(mib)

    adaptive, fixed = freed(0), freed(2 * 2**20)
    assert adaptive[0] is False and fixed[0] is True
    assert adaptive[1] < 20  # stays in the heap, pinned by the small blocks
    assert fixed[1] > 170  # each array had its own mapping, handed back on free


def _tracked_ids() -> set[int]:
    # gc.get_objects() lists the three generations, not the frozen objects.
    return {id(o) for o in gc.get_objects()}


def _frozen_holder(tmp_path: Path, monkeypatch) -> tuple[EngineHolder, Path, threading.Event]:
    """A holder that freezes the heap, over a directory of one artifact; its releases signal."""
    monkeypatch.setattr(holder_module, "RELEASE_DELAY_S", 0.0)
    released = threading.Event()
    real_after_drop = holder_module._after_drop

    def after_drop(*args: bool) -> None:
        real_after_drop(*args)
        released.set()

    monkeypatch.setattr(holder_module, "_after_drop", after_drop)
    root = tmp_path / "artifacts"
    root.mkdir()
    publish_synthetic_artifact(root / "a", SPEC)
    holder = EngineHolder(StateStore(tmp_path / "state.sqlite"), root, freeze_heap=True)
    holder.load_initial()
    assert holder.engine is not None and gc.is_tracked(holder.engine)
    assert gc.get_freeze_count() > 0
    assert id(holder.engine) not in _tracked_ids()  # frozen: full collections skip it
    return holder, root, released


def test_frozen_heap_freezes_the_next_engine_once_the_old_one_is_gone(
    tmp_path: Path, monkeypatch
) -> None:
    holder, root, released = _frozen_holder(tmp_path, monkeypatch)
    old = holder.engine
    gone = threading.Event()
    weakref.finalize(old.artifact, gone.set)
    publish_synthetic_artifact(root / "b", SPEC)
    changed, new = holder.reload()
    assert changed and new is not old
    assert id(new) in _tracked_ids()  # not frozen while the old one may serve requests
    del old
    assert gone.is_set()  # frozen, yet freed by reference counting at once
    assert released.wait(10)
    assert id(holder.engine) not in _tracked_ids()


def test_frozen_heap_still_collects_a_replaced_artifact_in_a_cycle(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(holder_module, "ORPHAN_CHECK_S", 0.2)
    holder, root, released = _frozen_holder(tmp_path, monkeypatch)
    old = holder.engine
    # A reference cycle through the old artifact: only the cyclic collector frees
    # it, and it never would while frozen.
    old.artifact.cycle = [old.artifact]
    gone = threading.Event()
    weakref.finalize(old.artifact, gone.set)
    publish_synthetic_artifact(root / "b", SPEC)
    changed, new = holder.reload()
    assert changed and new is not old
    del old
    gc.collect()
    assert not gone.is_set()  # frozen, the cycle survives a full collection
    assert gone.wait(10)  # until the check after the reload unfreezes the heap
    assert released.wait(10)
    assert gc.get_freeze_count() > 0
    assert id(holder.engine) not in _tracked_ids()


def test_heap_is_not_frozen_unless_asked(tmp_path: Path) -> None:
    artifact = tmp_path / "a"
    publish_synthetic_artifact(artifact, SPEC)
    gc.unfreeze()
    holder = EngineHolder(StateStore(tmp_path / "state.sqlite"), artifact)
    holder.load_initial()
    assert gc.get_freeze_count() == 0
    assert id(holder.engine) in _tracked_ids()


def test_reload_lets_go_of_the_replaced_artifacts_index_pages(tmp_path: Path, monkeypatch) -> None:
    from recsys.artifact.loaded import Artifact

    released: list[Artifact] = []
    real = Artifact.release_index_pages

    def record(self: Artifact) -> int:
        released.append(self)
        return real(self)

    monkeypatch.setattr(Artifact, "release_index_pages", record)
    root = tmp_path / "artifacts"
    root.mkdir()
    publish_synthetic_artifact(root / "a", SPEC)
    holder = EngineHolder(StateStore(tmp_path / "state.sqlite"), root)
    holder.load_initial()
    old = holder.engine
    seed = old.artifact.track_ids_of([0])[0]
    before = old.listening.track_radio(seed, 10, user_id=None)
    assert holder.reload() == (False, old)  # nothing newer: nothing released
    publish_synthetic_artifact(root / "b", SPEC)
    changed, new = holder.reload()
    assert changed
    assert released == [old.artifact]
    # A request still holding the old engine gets the same answers from it.
    assert old.listening.track_radio(seed, 10, user_id=None) == before
