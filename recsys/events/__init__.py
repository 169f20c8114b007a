"""The event stage: training-rule filters and aggregation."""

from recsys.events.stage import (
    DROP_REASONS,
    EventFilter,
    EventReport,
    EventRules,
    Interactions,
    aggregate,
    select_training_events,
)

__all__ = [
    "DROP_REASONS",
    "EventFilter",
    "EventReport",
    "EventRules",
    "Interactions",
    "aggregate",
    "select_training_events",
]
