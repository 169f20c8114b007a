"""Reloads: the old artifact's memory goes back to the OS; loading uses short GIL slices."""

from __future__ import annotations

import gc
import sys
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
    monkeypatch.setattr(holder_module, "_release_soon", lambda: calls.append(1))
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
