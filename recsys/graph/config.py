"""Settings of the similar-artist graph (the ``[graph]`` section of ``recsys train --config``).

Every default is documented in ``docs/graph.md`` together with the figures it
was measured with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from recsys.errors import ConfigError

GraphMode = Literal["anchored", "learned"]


@dataclass(frozen=True)
class GraphConfig:
    """How the similar-artist graph is built.

    Parameters
    ----------
    mode
        ``"anchored"`` (the served graph: editorial relations first, learned
        relations anchored to them) or ``"learned"`` (learned similarity
        alone, no editorial input at all: the baseline of
        ``benchmarks/bench_graph.py``).
    session_gap_minutes
        Streams of one user at most this far apart belong to one listening
        session; artists co-occurring in a session are co-listened. With a
        ``plays`` table (no time) a user's whole profile is one basket.
    max_basket_artists
        A session (or profile) counts at most this many artists, its most
        played ones: bounds the quadratic number of pairs per basket.
    min_artist_listeners
        Artists with fewer distinct training listeners get no learned
        relations and are never a learned neighbour (too little evidence).
    min_shared_listeners
        A co-listening pair counts only with at least this many distinct
        accounts behind it; each account counts once per pair however much
        it streams (the per-account cap).
    colisten_shrinkage
        Shrinks the co-listening similarity of pairs with few shared
        listeners: ``c / (c + shrinkage)``.
    colisten_weight
        Share of co-listening in the learned score; the rest is the cosine
        of the artist vectors.
    vector_candidates
        Nearest artists by vector cosine considered per artist.
    min_learned_score
        Learned relations below this learned score are never kept.
    min_vector_similarity
        Learned relations need at least this cosine of the artist vectors:
        co-listening alone (which a few accounts can fake in sessions) does
        not make a relation.
    knn
        Out-degree of the learned graph the anchoring walk runs over.
    editorial_walk_share
        Probability that a walk step from an artist with editorial relations
        follows one of them rather than a learned edge.
    walk_steps
        Length of the truncated personalised PageRank walk.
    walk_first_step
        First walk step that scores. 2 (default): an artist's own learned edge
        is its learned evidence, already in the learned score; anchoring
        counts only what reaches the neighbour through other artists, its
        editorial neighbours first.
    walk_decay
        Weight of step ``t`` is ``walk_decay ** (t - 1)`` (a restart
        probability of ``1 - walk_decay``).
    walk_keep
        Entries kept per source after each walk step (pruning bounds memory).
    anchor_weight
        Share of the anchoring (walk) score in the rank of learned relations.
    min_anchored_score
        Learned relations whose anchored score (1 for the artist's best
        candidate on both terms) is below this are not kept: a relation
        that nothing but its own learned evidence supports scores at most
        ``1 - anchor_weight``.
    max_seed_hops
        A learned neighbour must be reachable from an editorially seeded
        artist in at most this many steps of the graph (``-1``: no limit).
    max_learned
        Learned relations kept per artist.
    """

    mode: GraphMode = "anchored"
    session_gap_minutes: float = 30.0
    max_basket_artists: int = 50
    min_artist_listeners: int = 3
    min_shared_listeners: int = 3
    colisten_shrinkage: float = 5.0
    colisten_weight: float = 0.5
    vector_candidates: int = 100
    min_learned_score: float = 0.1
    min_vector_similarity: float = 0.2
    knn: int = 20
    editorial_walk_share: float = 0.8
    walk_steps: int = 3
    walk_first_step: int = 2
    walk_decay: float = 0.5
    walk_keep: int = 300
    anchor_weight: float = 0.8
    min_anchored_score: float = 0.25
    max_seed_hops: int = 3
    max_learned: int = 50

    def __post_init__(self) -> None:
        if self.mode not in ("anchored", "learned"):
            raise ConfigError(f"graph mode must be 'anchored' or 'learned', got {self.mode!r}")
        for name in (
            "colisten_weight",
            "editorial_walk_share",
            "walk_decay",
            "anchor_weight",
            "min_anchored_score",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"graph.{name} must be in [0, 1], got {value}")
        for name in (
            "max_basket_artists",
            "min_artist_listeners",
            "min_shared_listeners",
            "vector_candidates",
            "knn",
            "walk_steps",
            "walk_first_step",
            "walk_keep",
            "max_learned",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"graph.{name} must be >= 1")
        if self.session_gap_minutes <= 0 or self.colisten_shrinkage < 0:
            raise ConfigError("graph.session_gap_minutes must be > 0, colisten_shrinkage >= 0")
