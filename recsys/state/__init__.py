"""Durable platform state (takedowns, erasures) shared by the server and training."""

from recsys.state.store import ENTITY_TYPES, StateSnapshot, StateStore

__all__ = ["ENTITY_TYPES", "StateSnapshot", "StateStore"]
