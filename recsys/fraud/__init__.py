"""Fraud detection: artificial streams and the accounts that make them.

``FraudDetector(settings).detect(data)`` runs stream-level rules (impossible
sequences, simultaneous plays, bursts) and account-level rules (farms of
near-identical accounts, promotion campaigns playing a set of tracks in
lockstep, loops, threshold gaming, volume, concentration, ...)
and returns a :class:`FraudResult` with one reason per flagged stream; the
taste-only rules (concentration, obscure tracks, low diversity) are reported
as supporting evidence.
:class:`FraudFilter` plugs the detector into the event stage. Rules, reason
codes and defaults: ``docs/fraud.md``.
"""

from recsys.fraud.campaigns import CampaignGroups, find_campaigns
from recsys.fraud.detector import REASON_NAMES, FraudDetector, FraudFilter, FraudResult
from recsys.fraud.farms import FarmGroups, find_farms
from recsys.fraud.settings import (
    ACCOUNT_REASONS,
    ACCOUNT_RULES,
    ALL_RULES,
    PROFILE_REASONS,
    STREAM_REASONS,
    STREAM_RULES,
    SUPPORTING_REASONS,
    FraudSettings,
)

__all__ = [
    "ACCOUNT_REASONS",
    "ACCOUNT_RULES",
    "ALL_RULES",
    "PROFILE_REASONS",
    "REASON_NAMES",
    "STREAM_REASONS",
    "STREAM_RULES",
    "SUPPORTING_REASONS",
    "CampaignGroups",
    "FarmGroups",
    "FraudDetector",
    "FraudFilter",
    "FraudResult",
    "FraudSettings",
    "find_campaigns",
    "find_farms",
]
