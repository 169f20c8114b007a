"""The stream report per track, artist and label (what royalties are computed from)."""

from recsys.report.streams import LEVELS, StreamReport, stream_report

__all__ = ["LEVELS", "StreamReport", "stream_report"]
