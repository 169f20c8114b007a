"""Thresholds of the fraud detector and the reason codes it reports.

Every threshold is a field of :class:`FraudSettings` with a documented
default; ``docs/fraud.md`` explains each rule. The defaults were set on the
synthetic platform (``recsys.synth``) with a margin on the genuine side (no
genuine listener of the ``small``, ``medium`` and ``large`` platforms is
flagged; the closest ones are measured in ``docs/fraud.md``) and checked on
the real Last.fm HetRec plays, where they flag 2 of 1 892 users (each plays
one artist nobody else plays, as a loop bot would).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from recsys.contract.schema import MIN_STREAM_MS

#: Reasons a single stream can be flagged for, in priority order. They apply
#: only to streams of accounts that no account rule flagged.
STREAM_REASONS: tuple[str, ...] = (
    "simultaneous",  # starts while too many of the account's plays are still running
    "impossible_sequence",  # starts before the account's previous play could have ended
    "burst",  # part of a window holding more streams than can fit in it
)

#: Reasons an account can be flagged for, in priority order: the first one
#: that applies is the account's main reason, the one its streams carry.
ACCOUNT_REASONS: tuple[str, ...] = (
    "farm",  # one of a group of accounts with near-identical listening
    "campaign",  # one of a group playing the same multi-artist set of tracks in lockstep
    "loop",  # one track over and over (streams: in 24 h; plays: by counts)
    "overlap",  # many physically impossible or simultaneous plays
    "burst",  # many streams in bursts no human listening fits in
    "threshold",  # most streams stop just after the 30 s that make them count
    "volume",  # more streams in 24 hours than a person listens to
    "new_account",  # a new account that streams heavily from the start
    "concentration",  # most streams on one artist, at high volume
    "obscure",  # most streams on tracks almost nobody else plays
    "low_diversity",  # many streams over very few distinct tracks
)

#: Account rules computable from user x track counts alone (``plays`` tables).
PROFILE_REASONS: tuple[str, ...] = (
    "farm",
    "campaign",
    "loop",
    "concentration",
    "obscure",
    "low_diversity",
)

#: Taste-only rules: supporting evidence. They are listed among the reasons of
#: an account another rule flagged but never flag one on their own (unless
#: ``FraudSettings.taste_rules_flag_alone``): a fan of one artist, of a niche
#: or of a small catalogue has the same profile, and on real aggregated data
#: (Last.fm HetRec: top-50 artists per user over years) absolute thresholds on
#: them would flag nearly everyone.
SUPPORTING_REASONS: tuple[str, ...] = ("concentration", "obscure", "low_diversity")

#: Rule names as reported in ``rules_run`` / ``rules_skipped`` (also the reason names).
STREAM_RULES: tuple[str, ...] = STREAM_REASONS
ACCOUNT_RULES: tuple[str, ...] = tuple(f"account:{r}" for r in ACCOUNT_REASONS)
ALL_RULES: tuple[str, ...] = STREAM_RULES + ACCOUNT_RULES


@dataclass(frozen=True)
class FraudSettings:
    """Thresholds of every fraud rule.

    Counts are of *streams* (plays of at least ``min_stream_ms``); shorter
    plays are never flagged, only used to reconstruct what a device was doing.
    An account rule with several conditions fires only when all hold. The
    taste-only rules (:data:`SUPPORTING_REASONS`) support a flag but do not
    raise one, unless ``taste_rules_flag_alone``.

    Parameters
    ----------
    min_stream_ms
        Shortest play that counts as a stream (contract: 30 000 ms). Shorter
        plays are never reported as fraud.
    overlap_tolerance_ms
        Slack before a play counts as overlapping the one before it: the next
        play may start up to this long before the previous one ends. Covers
        crossfade (up to 12 s on common players) and clock skew between devices.
    max_concurrent_plays
        A stream that starts while at least this many earlier plays of the same
        account are still running (beyond the tolerance) is ``simultaneous``:
        three devices playing at once on one account.
    burst_window_ms, burst_max_streams, burst_cut_margin_ms
        More than ``burst_max_streams`` streams cut short (stopped at least
        ``burst_cut_margin_ms`` before the end of the track) starting within
        any window of ``burst_window_ms`` is a ``burst`` (default: 12 in 10
        minutes, on average under 50 s per stream; genuine listeners of the
        synthetic platform peak at 8 streams of any kind). Streams played to
        the end never count: an album of one-minute tracks is not a burst.
    overlap_min_share, overlap_min_streams
        ``account:overlap``: at least this share of an account's streams, and at
        least this many, are ``simultaneous`` or ``impossible_sequence``.
    burst_min_share, burst_min_streams
        ``account:burst``: at least this share of an account's streams, and this
        many, are inside bursts.
    threshold_margin_ms, threshold_max_fraction, threshold_min_share, threshold_min_streams
        ``account:threshold`` (royalty-threshold gaming): a stream is *barely
        counted* when it stopped within ``threshold_margin_ms`` after
        ``min_stream_ms`` and before ``threshold_max_fraction`` of the track's
        duration. The rule fires when at least ``threshold_min_share`` of the
        account's streams, and ``threshold_min_streams`` of them, are barely counted.
    volume_daily_streams
        ``account:volume``: at least this many streams within 24 hours (400
        streams of 3.5 min is 23 hours of listening).
    new_account_days, new_account_daily_streams, new_account_min_streams
        ``account:new_account``: the first stream came at most
        ``new_account_days`` after the account was created, and the account
        averages at least ``new_account_daily_streams`` streams per active day
        over at least ``new_account_min_streams`` streams.
    loop_daily_streams
        ``account:loop`` with ``streams``: one track streamed at least this many
        times within 24 hours (50 plays of a 3.5 min track is three hours of one song).
    loop_top_tracks, loop_min_share, loop_min_streams, loop_max_tracks, loop_min_track_share
        ``account:loop`` with ``plays`` (no time, so repetition by counts): the
        ``loop_top_tracks`` most played tracks hold at least ``loop_min_share``
        of the plays, the top track at least ``loop_min_streams`` plays, the
        account plays at most ``loop_max_tracks`` distinct tracks in all (the
        loop *is* the account) and its plays are at least
        ``loop_min_track_share`` of all the plays of its top track (it makes
        that track's numbers). Without time a loop and a devoted fan differ
        only in degree, so counts alone need all four: on Last.fm HetRec the
        first two conditions alone flag 12 of 1 892 users, fans with 7 to 50
        artists or of the most played artist of the data; all four, 2 (one
        artist each, nobody else plays it).
    concentration_min_share, concentration_min_streams
        ``account:concentration``: the most played artist holds at least this
        share of the account's streams, and at least this many streams.
    obscure_max_listeners, obscure_min_share, obscure_min_streams, obscure_min_repeats
        ``account:obscure``: a track is obscure when at most
        ``obscure_max_listeners`` accounts streamed it; the rule fires when at
        least ``obscure_min_share`` of the account's streams, and
        ``obscure_min_streams`` of them, are on obscure tracks, played at least
        ``obscure_min_repeats`` times each on average. The last condition is
        what separates pumping a few tracks from a fan of niche music, who
        plays many obscure tracks a few times each.
    low_diversity_max_ratio, low_diversity_min_streams
        ``account:low_diversity``: distinct tracks / streams at most
        ``low_diversity_max_ratio`` (each track played 20 times on average by
        default) over at least ``low_diversity_min_streams`` streams.
    farm_min_streams, farm_min_tracks, farm_max_tracks
        Accounts compared for ``account:farm``: at least this many streams and a
        number of distinct tracks in ``[farm_min_tracks, farm_max_tracks]``
        (farms play small catalogues; bounding the set size keeps MinHash cheap).
    farm_min_jaccard, farm_min_jaccard_plays
        Two accounts are near-identical when the Jaccard similarity of their
        track sets is at least this; with ``plays`` (no co-activity check to
        tell a farm from fans of one small catalogue) the stricter second value.
    farm_min_coactivity
        With ``streams``, two near-identical accounts are linked only when the
        Jaccard similarity of their active UTC hours is at least this (farm
        accounts run together; fans of one small catalogue do not). 0 links
        on track sets alone, as with ``plays``.
    farm_min_accounts
        A connected group of near-identical accounts this large is a farm
        (5: smaller groups can be a household sharing a playlist).
    farm_bands, farm_rows
        MinHash LSH banding: ``farm_bands`` bands of ``farm_rows`` hashes. Two
        sets with Jaccard ``J`` share a bucket with probability
        ``1 - (1 - J**rows)**bands`` (0.89 at J = 0.7, 0.99 at J = 0.8).
    campaign_min_accounts, campaign_min_artists, campaign_min_share, campaign_min_lockstep
        ``account:campaign`` (see :mod:`recsys.fraud.campaigns`): at least
        ``campaign_min_accounts`` accounts all play a *core* of tracks by at
        least ``campaign_min_artists`` artists, are at least
        ``campaign_min_share`` of every core track's listeners, and at least
        ``campaign_min_lockstep`` of the accounts playing two or more core
        tracks play all of them. Genuine cores of 4 artists reach lockstep
        0.55 at most on Last.fm HetRec and the synthetic platforms (3-artist
        cores reach 0.83, hence 4 artists).
    campaign_max_loss
        A track joins a growing core only if at most this share of the group
        does not play it.
    campaign_bands, campaign_rows
        MinHash LSH over the tracks' listener sets. Two tracks whose common
        listeners are a share ``d`` of both audiences have Jaccard at least
        ``d / (2 - d)`` and share a bucket with probability
        ``1 - (1 - J**rows)**bands`` (0.56 at J = 0.2, 0.85 at J = 0.3, 0.97
        at J = 0.4 by default); a core needs most of its pairs found, not all.
    seed
        Seed of the MinHash permutations (results are reproducible).
    taste_rules_flag_alone
        Let ``concentration``, ``obscure`` and ``low_diversity`` flag an
        account on their own. Only sensible where their thresholds were
        calibrated on the platform's own catalogue and window.
    disabled_rules
        Rule names (see :data:`ALL_RULES`) not to run; reported as skipped.
    """

    min_stream_ms: int = MIN_STREAM_MS
    # stream rules
    overlap_tolerance_ms: int = 12_000
    max_concurrent_plays: int = 2
    burst_window_ms: int = 600_000
    burst_max_streams: int = 12
    burst_cut_margin_ms: int = 5_000
    # account rules that need time
    overlap_min_share: float = 0.05
    overlap_min_streams: int = 10
    burst_min_share: float = 0.2
    burst_min_streams: int = 20
    threshold_margin_ms: int = 10_000
    threshold_max_fraction: float = 0.8
    threshold_min_share: float = 0.3
    threshold_min_streams: int = 20
    volume_daily_streams: int = 400
    new_account_days: float = 30.0
    new_account_daily_streams: float = 100.0
    new_account_min_streams: int = 100
    loop_daily_streams: int = 50
    # profile rules (counts only)
    loop_top_tracks: int = 3
    loop_min_share: float = 0.95
    loop_min_streams: int = 100
    loop_max_tracks: int = 5
    loop_min_track_share: float = 0.5
    concentration_min_share: float = 0.5
    concentration_min_streams: int = 100
    obscure_max_listeners: int = 3
    obscure_min_share: float = 0.5
    obscure_min_streams: int = 100
    obscure_min_repeats: float = 8.0
    low_diversity_max_ratio: float = 0.05
    low_diversity_min_streams: int = 200
    # farms
    farm_min_streams: int = 20
    farm_min_tracks: int = 5
    farm_max_tracks: int = 500
    farm_min_jaccard: float = 0.6
    farm_min_jaccard_plays: float = 0.8
    farm_min_coactivity: float = 0.2
    farm_min_accounts: int = 5
    farm_bands: int = 8
    farm_rows: int = 4
    campaign_min_accounts: int = 10
    campaign_min_artists: int = 4
    campaign_min_share: float = 0.25
    campaign_min_lockstep: float = 0.8
    campaign_max_loss: float = 0.1
    campaign_bands: int = 20
    campaign_rows: int = 2
    seed: int = 0
    taste_rules_flag_alone: bool = False
    disabled_rules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.disabled_rules) - set(ALL_RULES)
        if unknown:
            raise ValueError(f"unknown rules in disabled_rules: {sorted(unknown)}; see ALL_RULES")
        for name in (
            "loop_top_tracks",
            "loop_max_tracks",
            "farm_min_accounts",
            "farm_bands",
            "farm_rows",
            "campaign_min_accounts",
            "campaign_min_artists",
            "campaign_bands",
            "campaign_rows",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not (0.0 < self.farm_min_jaccard <= 1.0 and 0.0 < self.farm_min_jaccard_plays <= 1.0):
            raise ValueError("farm_min_jaccard and farm_min_jaccard_plays must be in (0, 1]")
        for name in ("campaign_min_share", "campaign_min_lockstep"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1]")
        if not 0.0 <= self.campaign_max_loss < 1.0:
            raise ValueError("campaign_max_loss must be in [0, 1)")
        if self.burst_window_ms <= 0 or self.burst_max_streams < 1:
            raise ValueError("burst_window_ms and burst_max_streams must be positive")
        if self.max_concurrent_plays < 1:
            raise ValueError("max_concurrent_plays must be at least 1")

    def to_dict(self) -> dict[str, object]:
        """JSON-able copy of the settings (for the artifact manifest)."""
        out = asdict(self)
        out["disabled_rules"] = list(self.disabled_rules)
        return out
