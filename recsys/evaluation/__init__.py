"""Offline evaluation: per-user holdout splits and top-k ranking metrics."""

from recsys.evaluation.metrics import (
    hit_ratio_at_k,
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    relevance_matrix,
)
from recsys.evaluation.splits import holdout_frame, random_holdout

__all__ = [
    "hit_ratio_at_k",
    "holdout_frame",
    "map_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "random_holdout",
    "ranking_metrics",
    "recall_at_k",
    "relevance_matrix",
]
