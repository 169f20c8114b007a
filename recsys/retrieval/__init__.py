"""FAISS candidate retrieval over the trusted pool.

``build_index`` builds an exact (flat inner product) or HNSW index over pool track
vectors; ``VectorIndex.search`` returns the top-k items per query by inner product
or cosine, leaving out per-query and globally blocked ids inside the search; ``StoredAnswers``
keeps an index's answers to known queries (users, artists) computed at publish time.
"""

from recsys.retrieval.answers import StoredAnswers, compute_answers
from recsys.retrieval.index import (
    MAX_OVERFETCH_EXTRA,
    SINGLE_THREAD_MAX_QUERIES,
    HnswSpace,
    Kind,
    Metric,
    VectorIndex,
    build_index,
)
from recsys.retrieval.threads import omp_threads

__all__ = [
    "MAX_OVERFETCH_EXTRA",
    "SINGLE_THREAD_MAX_QUERIES",
    "StoredAnswers",
    "HnswSpace",
    "Kind",
    "Metric",
    "VectorIndex",
    "build_index",
    "compute_answers",
    "omp_threads",
]
