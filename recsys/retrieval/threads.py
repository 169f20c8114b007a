"""OpenMP thread control for faiss calls.

faiss parallelises with OpenMP (and its bundled OpenBLAS is the OpenMP build, so
BLAS follows the same setting).  Two facts drive the policy used by
:mod:`recsys.retrieval.index`:

* Builds (HNSW graph construction, large flat adds) scale with cores, so they use
  faiss's default, i.e. every core OpenMP was given (``OMP_NUM_THREADS`` or all).
* A single query, or a handful of them, has too little work to split.  Opening a
  parallel region still wakes the whole team and waits at a barrier for every
  thread; on a machine whose cores are busy with other work the barrier waits for a
  descheduled thread.  Measured on a shared 2-core box (200K x 64 flat index,
  another process busy): single-query exact search took 2.0 ms with one thread
  and 24 ms with two; HNSW 0.24 ms either way for one query but 2.0 ms vs 0.23 ms
  per query for batches of 4.  Small batches therefore run on one thread.

``omp_set_num_threads`` changes the calling thread's own OpenMP setting (the
``nthreads-var`` ICV is per data environment), so concurrent request threads in a
server do not change each other's setting; :func:`omp_threads` restores the
previous value on exit anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import faiss


@contextmanager
def omp_threads(n_threads: int | None) -> Iterator[None]:
    """Run the body with faiss/OpenMP limited to ``n_threads`` threads.

    Parameters
    ----------
    n_threads : int or None
        Number of OpenMP threads for faiss calls in the body; ``None`` leaves the
        current setting untouched.  Values below 1 are treated as 1.
    """
    if n_threads is None:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(max(1, int(n_threads)))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)
