"""recsys: music recommendations a streaming platform can vouch for."""

__version__ = "0.1.0"
