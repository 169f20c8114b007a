"""The engine being served, swapped atomically on reload and on platform-state changes."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import platform
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from recsys.artifact.loaded import Artifact
from recsys.artifact.store import read_manifest, resolve_artifact
from recsys.errors import ArtifactError
from recsys.state import StateStore
from recsys.surfaces.engine import SERVING_CATALOGUE_COLUMNS, Engine

logger = logging.getLogger(__name__)


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


_LIBC = _glibc()


def use_system_allocator_for_arrow() -> None:
    """Make Arrow allocate through the C library's ``malloc``, which :func:`release_memory` trims.

    Arrow's default pool (mimalloc in these wheels) keeps segments that a
    dropped artifact freed, and ``release_unused`` does not give all of them
    back: measured on the 1M-track pool, three reloads in a loading thread left
    the process at 2029 MiB after the release, against 1784 MiB with the system
    pool (1835 MiB before the first reload). Loads took about as long (single
    in-process loads of 4.4 s and 4.8 s; reloads under load 8.1 s against
    8.4-8.6 s).
    """
    pa.set_memory_pool(pa.system_memory_pool())


#: glibc's ``mallopt`` parameter number of ``M_MMAP_THRESHOLD`` (malloc.h).
_M_MMAP_THRESHOLD = -3


def map_large_allocations(threshold: int) -> bool:
    """Give every allocation of at least ``threshold`` bytes a mapping of its own (glibc).

    glibc serves large blocks from their own mappings, which ``free`` hands
    straight back, but raises that threshold to the size of each such block
    freed (up to 32 MiB). After the first reload freed an artifact's arrays,
    the next artifact's arrays (mostly 1-8 MB) came from the heaps, and what a
    replaced artifact freed there stayed resident until the next
    :func:`release_memory`, so a reload following soon after another loaded on
    top of it. A fixed threshold keeps the mapping for large arrays. Measured
    on the 1M-track pool, four reloads in a row from loading threads, the
    release 5 s later (``docs/serving.md``, ninth round): 742-792 MiB resident
    after each reload and peaks of 923-1087 MiB with glibc's adaptive
    threshold, against 535-554 MiB and 828-853 MiB with 2 MiB. Requests
    allocate far below it (the HNSW search's visited table is 1 MB on a 1M
    pool), so they keep the heaps' speed.

    Parameters
    ----------
    threshold
        Bytes; 0 leaves glibc's adaptive threshold alone.

    Returns
    -------
    bool
        Whether the threshold was set (False: 0, or not glibc).
    """
    if threshold <= 0 or _LIBC is None:
        return False
    ok = bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, int(threshold)))
    if ok:
        logger.info("allocations of %d bytes and more get their own mapping", threshold)
    return ok


def prepare_allocators(mmap_threshold: int) -> None:
    """Set up a serving process's allocators so that a replaced artifact's memory can leave.

    Arrow through ``malloc`` (:func:`use_system_allocator_for_arrow`) and large
    blocks on mappings of their own (:func:`map_large_allocations`).
    """
    use_system_allocator_for_arrow()
    map_large_allocations(mmap_threshold)


def release_memory() -> None:
    """Hand memory freed by a dropped artifact back to the operating system.

    The allocators keep what a multi-GB artifact freed for reuse (glibc's
    heaps, Arrow's pool), so without this the process stays larger after
    every reload (measured with a 1M-track pool: 400-500 MB more after a
    reload, given back here).
    """
    t0 = time.perf_counter()
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    logger.info("released freed memory in %.2fs", time.perf_counter() - t0)


#: Delay between an old artifact's collection and the release: the finalizer runs
#: as its deallocation starts, and its arrays are freed right after.
RELEASE_DELAY_S = 1.0


def freeze_long_lived() -> None:
    """Collect, then take every object alive now out of the collector's full scans.

    A full collection (generation 2) visits every tracked object. In a serving
    process that is the import graph of pandas, pyarrow, faiss and FastAPI plus
    the engine, about 94,000 objects, and took 66-98 ms under load on this
    machine (docs/serving.md, tenth round), holding the GIL: every request in
    flight waited that long. Objects that live as long as the process or the
    artifact never become garbage, so :func:`gc.freeze` moves them to the
    permanent generation, which collections skip (1.2-1.7 ms afterwards).
    Requests' own garbage is still collected as before, and frozen objects are
    still freed by reference counting. Collecting first keeps garbage out of the
    frozen set, where a reference cycle would never be collected; once the heap
    is frozen, that collection only visits what was created since.
    """
    t0 = time.perf_counter()
    gc.collect()
    gc.freeze()
    logger.info(
        "froze %d objects out of the collector's scans in %.3fs",
        gc.get_freeze_count(),
        time.perf_counter() - t0,
    )


#: Seconds after a reload by which the replaced artifact is expected to be gone.
#: If it is still alive then (a reference cycle through it, which only the
#: collector frees, and frozen objects are beyond its reach), the heap is unfrozen
#: for one full collection.
ORPHAN_CHECK_S = 60.0


def _collect_if_still_alive(ref: weakref.ref) -> None:
    if ref() is None:
        return
    logger.warning(
        "the replaced artifact is still alive %.0fs after the reload: unfreezing the heap "
        "for one full collection",
        ORPHAN_CHECK_S,
    )
    gc.unfreeze()
    freeze_long_lived()


def _release_soon(freeze: bool = False, release: bool = True) -> None:
    # Runs in whichever thread dropped the old artifact last (possibly a
    # request's): release from a timer thread instead, once the freeing is done.
    timer = threading.Timer(RELEASE_DELAY_S, _after_drop, args=(freeze, release))
    timer.daemon = True
    timer.name = "release-memory"
    timer.start()


def _after_drop(freeze: bool, release: bool = True) -> None:
    """What follows a replaced artifact's collection: refreeze, then hand memory back."""
    if freeze:
        freeze_long_lived()
    if release:
        release_memory()


#: GIL switch interval while a reload loads beside the serving event loop (Python's
#: default is 5 ms).
RELOAD_SWITCH_INTERVAL_S = 0.0005


@contextlib.contextmanager
def _short_gil_slices():
    """Shorter GIL slices while loading, so the event loop waits less for the loader.

    A reload runs in a worker thread. Whenever the loader holds the GIL and the
    event loop asks for it, the loop waits out the switch interval before the
    loader is made to let go, once per hand-over.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(RELOAD_SWITCH_INTERVAL_S)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class EngineHolder:
    """Holds the current :class:`Engine`; all swaps are single reference assignments.

    A request takes the engine once (:meth:`current`) and uses it to the end,
    so a reload or a takedown never changes an answer half-way.

    Parameters
    ----------
    store
        The durable state (takedowns, erasures) applied to every engine.
    artifact_path
        Artifact, or directory of artifacts, that :meth:`reload` loads from.
    release_dropped
        Hand memory back (:func:`release_memory`) shortly after a replaced
        artifact is collected. The supervisor of ``--workers`` does it itself,
        before forking, instead: trimming the heap later would write to pages
        its workers share.
    freeze_heap
        Keep the loaded engine, and everything alive with it, out of the cyclic
        collector's full scans (:func:`freeze_long_lived`): after the first
        load, and after each replaced artifact is gone. A replaced artifact
        still alive :data:`ORPHAN_CHECK_S` after the reload (a reference cycle)
        is handed back to the collector (:func:`gc.unfreeze`). Process-wide:
        the service turns it on in a single-process server
        (``RECSYS_GC_FREEZE``); the supervisor of ``--workers`` freezes around
        its forks itself.
    """

    def __init__(
        self,
        store: StateStore,
        artifact_path: Path | None,
        *,
        release_dropped: bool = True,
        freeze_heap: bool = False,
    ) -> None:
        self.store = store
        self.artifact_path = artifact_path
        self.release_dropped = release_dropped
        self.freeze_heap = freeze_heap
        self.engine: Engine | None = None
        self._lock = threading.Lock()  # one rebuild or reload at a time
        self.reloads = {"ok": 0, "refused": 0, "unchanged": 0}
        #: In a worker of ``recsys serve --workers N``: reloads are the supervisor's
        #: (:meth:`serving.workers.WorkerLink.reload`).
        self.remote_reload: Callable[[], tuple[bool, str]] | None = None

    def release_index_pages(self) -> int:
        """Let go of the served artifact's mapped index pages in this process.

        A retiring worker of ``--workers`` calls it: its requests in flight
        bring back what they touch, and the rest of the old mapping stops
        counting beside the new workers' (see :meth:`Artifact.release_index_pages`).

        Returns
        -------
        int
            Bytes of mapping advised (0 with no engine).
        """
        engine = self.engine
        if engine is None:
            return 0
        released = engine.artifact.release_index_pages()
        logger.info("released %.0f MiB of mapped index pages", released / 2**20)
        return released

    def current(self) -> Engine:
        """The engine for this request, refreshed first if the state store moved on.

        Checking the store's generation on every request is what makes a
        takedown or erasure made through another server process effective on
        the very next request here too.
        """
        engine = self.engine
        if engine is None:
            raise ArtifactError("no artifact loaded yet")
        generation = self.store.generation()
        if generation != engine.state_generation:
            with self._lock:
                engine = self.engine
                assert engine is not None
                if engine.state_generation != self.store.generation():
                    engine = engine.with_state(self.store.snapshot())
                    self.engine = engine
                    logger.info("state generation %d applied", engine.state_generation)
        return engine

    def fresh(self) -> Engine | None:
        """The engine when it is up to date with the state store, else ``None``.

        One cheap read, no lock and no rebuild: what a request can do on the
        event loop; ``None`` sends it to :meth:`current` in a worker thread.

        Raises
        ------
        ArtifactError
            No artifact loaded yet.
        """
        engine = self.engine
        if engine is None:
            raise ArtifactError("no artifact loaded yet")
        return engine if engine.state_generation == self.store.generation() else None

    def refresh(self) -> Engine:
        """Apply the state store now (after an admin write)."""
        return self.current()

    def _load(self, path: Path) -> Engine:
        """Load and check the artifact at ``path`` and build its engine.

        Memory that loading needed only for a while (decoding buffers, sort
        keys) is handed back twice: once the artifact is read, before the
        engine's arrays are built, and once the engine is built. On a reload
        that lowers the peak while the old artifact is still held: measured on
        the 1M-track pool, 470 MiB above the process's start instead of 548
        MiB with the one release at the end.
        """
        artifact = Artifact.load(path, catalogue_columns=SERVING_CATALOGUE_COLUMNS)
        release_memory()
        engine = Engine(artifact, state=self.store.snapshot())
        release_memory()
        return engine

    def load_initial(self) -> None:
        if self.artifact_path is not None:
            self.engine = self._load(self.artifact_path)
            logger.info("serving artifact %s", self.engine.version)
        if self.freeze_heap:
            freeze_long_lived()

    def newest_version(self) -> str | None:
        """Version of the newest complete artifact at ``artifact_path`` (no loading)."""
        if self.artifact_path is None:
            return None
        path = resolve_artifact(self.artifact_path)
        return str(read_manifest(path, verify=False)["version"])

    def request_reload(self) -> tuple[bool, str]:
        """Reload here, or have the supervisor reload every worker.

        Returns
        -------
        (changed, model_version)

        Raises
        ------
        ArtifactError
            The newest artifact is broken; the current one keeps serving.
        """
        if self.remote_reload is None:
            changed, engine = self.reload()
            return changed, engine.version
        return self.remote_reload()

    def reload(self) -> tuple[bool, Engine]:
        """Load the newest artifact beside the current one, check it, swap.

        Returns
        -------
        (changed, engine)
            ``changed`` is False when the newest artifact is already served.

        Raises
        ------
        ArtifactError
            No artifact path, or the newest artifact is broken: the current
            engine keeps serving.
        """
        if self.artifact_path is None:
            raise ArtifactError("the service was started without an artifact path")
        with self._lock:
            t0 = time.perf_counter()
            try:
                path = resolve_artifact(self.artifact_path)
                current = self.engine
                if current is not None and current.artifact.path == path:
                    manifest = read_manifest(path, verify=False)
                    if manifest["version"] == current.version:
                        self.reloads["unchanged"] += 1
                        return False, current
                with _short_gil_slices():
                    engine = self._load(path)
            except ArtifactError:
                self.reloads["refused"] += 1
                logger.exception("reload refused; still serving the current artifact")
                raise
            replaced = (
                current.artifact
                if current is not None and current.artifact is not engine.artifact
                else None
            )
            if replaced is not None and (self.release_dropped or self.freeze_heap):
                # Requests in flight may still use the old artifact: release (and
                # freeze the new one) once it is gone.
                weakref.finalize(replaced, _release_soon, self.freeze_heap, self.release_dropped)
            self.engine = engine
            if replaced is not None:
                # The new engine's first searches map its index files 2 MiB at a time
                # (about 300 MB within 10 ms, measured), while the old mapping stays
                # resident until the last request on it ends: a peak of both. Its
                # pages go now; a request still on it brings back what it touches.
                replaced.release_index_pages()
                if self.freeze_heap:
                    # The old artifact stays frozen and goes by reference counting when
                    # the last request using it ends; the release that follows freezes
                    # the new one. Unfreezing here made collections scan the whole heap
                    # again: 1.19 s of them over 10 reloads, against 0.27 s without
                    # freezing (measured). Should a cycle keep the old one alive, the
                    # check below hands it to the collector.
                    timer = threading.Timer(
                        ORPHAN_CHECK_S, _collect_if_still_alive, args=(weakref.ref(replaced),)
                    )
                    timer.daemon = True
                    timer.name = "orphan-check"
                    timer.start()
            del current, replaced  # no reference from here keeps the old engine alive
            self.reloads["ok"] += 1
            logger.info("reloaded artifact %s in %.2fs", engine.version, time.perf_counter() - t0)
            return True, engine


class ArtifactWatcher:
    """Polls the artifact directory and reloads when a newer artifact appears."""

    def __init__(self, holder: EngineHolder, interval_s: float) -> None:
        self.holder = holder
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="artifact-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                engine = self.holder.engine
                newest = self.holder.newest_version()
                if newest is not None and (engine is None or newest != engine.version):
                    self.holder.reload()
            except ArtifactError:
                pass  # logged by reload; keep serving and keep watching
            except Exception:  # noqa: BLE001 - the watcher must never die silently
                logger.exception("artifact watcher error")
