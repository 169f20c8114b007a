"""The similar-artist graph: editorial relations first, learned relations anchored to them.

``build_graph`` builds it from a training run (the pipeline's ``graph``
stage), ``ArtistGraph`` serves it, ``export_review`` / ``import_review``
put learned relations in front of editors. Method and figures:
``docs/graph.md``.
"""

from recsys.graph.build import (
    EDITORIAL,
    LEARNED,
    PROVENANCES,
    REVIEWED,
    GraphBuild,
    GraphInputs,
    build_graph,
)
from recsys.graph.config import GraphConfig
from recsys.graph.model import ArtistGraph, read_graph
from recsys.graph.review import ImportReport, ReviewError, export_review, import_review

__all__ = [
    "EDITORIAL",
    "LEARNED",
    "PROVENANCES",
    "REVIEWED",
    "ArtistGraph",
    "GraphBuild",
    "GraphConfig",
    "GraphInputs",
    "ImportReport",
    "ReviewError",
    "build_graph",
    "export_review",
    "import_review",
    "read_graph",
]
