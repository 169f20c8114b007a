"""The trusted pool rule."""

from recsys.pool.rules import REASONS, Pool, PoolRules, Takedowns, build_pool

__all__ = ["REASONS", "Pool", "PoolRules", "Takedowns", "build_pool"]
