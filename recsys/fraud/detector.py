"""The fraud detector: run the rules, attribute one reason per flagged stream.

Attribution, so that every report reconciles exactly:

1. an account flagged by any account rule has its *main reason* (the first of
   :data:`~recsys.fraud.settings.ACCOUNT_REASONS` that fired), and every one of
   its streams carries ``account:<main reason>``;
2. a stream of an account no account rule flagged carries the first of
   :data:`~recsys.fraud.settings.STREAM_REASONS` that applies, if any;
3. plays shorter than ``min_stream_ms`` are not streams: never flagged.

The taste-only rules (``concentration``, ``obscure``, ``low_diversity``) are
supporting evidence: they appear among the reasons of an account another
rule flagged but never flag one alone (``FraudSettings.taste_rules_flag_alone``
changes that).

With aggregated ``plays`` only the profile rules run (``farm``, ``campaign``,
``loop``, ``concentration``, ``obscure``, ``low_diversity``); the others are
reported in ``rules_skipped`` with the reason.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.contract.load import ContractData
from recsys.fraud.accounts import (
    add_time_features,
    campaign_ratio,
    count_matrix,
    evaluate_rule,
    farm_ratio,
    profile_features,
    rule_conditions,
    severity,
)
from recsys.fraud.campaigns import CampaignGroups, find_campaigns
from recsys.fraud.farms import FarmGroups, find_farms
from recsys.fraud.settings import (
    ACCOUNT_REASONS,
    ALL_RULES,
    PROFILE_REASONS,
    STREAM_REASONS,
    SUPPORTING_REASONS,
    FraudSettings,
)
from recsys.fraud.streams import (
    NS_PER_DAY,
    NS_PER_HOUR,
    stream_features,
    timestamps_ns,
    track_window_max,
)

logger = logging.getLogger(__name__)

#: Every reason a stream can carry; ``stream_reason`` holds 1-based indices into it.
REASON_NAMES: tuple[str, ...] = STREAM_REASONS + tuple(f"account:{r}" for r in ACCOUNT_REASONS)

_NO_TIME = (
    "needs timestamps and play durations: the platform provided aggregated "
    "'plays' (user x track counts), not 'streams'"
)
_DISABLED = "disabled in FraudSettings.disabled_rules"


@dataclass
class FraudResult:
    """What the detector found.

    Attributes
    ----------
    event_table
        ``"streams"`` or ``"plays"``: the table the rows of ``stream_reason`` index.
    stream_reason
        Int16, shape (n_events,): 0 for a clean row, else a 1-based index into
        :attr:`reason_names`.
    reason_names
        Names of the reasons: the stream reasons, then ``account:<code>``.
    account_score
        Float64, shape (n_users,): highest severity in [0, 1] over the rules
        that can flag (supporting rules excluded); at least 0.5 exactly for
        flagged accounts.
    account_flags
        Bool, shape (n_users, len(ACCOUNT_REASONS)): which account rules fired
        on each flagged account (all False for accounts not flagged).
    account_reason
        Int16, shape (n_users,): 0 for a clean account, else the 1-based index
        of its main reason in :data:`ACCOUNT_REASONS`.
    accounts
        Flagged accounts, highest score first: ``user_idx``, ``user_id``,
        ``reasons`` (";"-joined codes, main reason first), ``main_reason``,
        ``score``, ``streams``, ``flagged_streams``, ``farm_id`` and
        ``campaign_id`` (-1: none).
    features
        Per-account features the rules read (n_users rows).
    farm_group
        Int64, shape (n_users,): farm id, -1 for none.
    campaign_group
        Int64, shape (n_users,): promotion campaign id, -1 for none (see
        :mod:`recsys.fraud.campaigns`).
    campaign_tracks
        Track rows of each campaign's core, in campaign id order.
    rule_ratio
        Float64, shape (n_users, len(ACCOUNT_REASONS)): every account rule's
        ratio (>= 1 where its conditions hold; 0 for rules that did not run).
    rules_run
        Rule names that ran (stream rules, then ``account:<code>``).
    rules_skipped
        Rule name -> why it did not run.
    settings
        The thresholds used.
    elapsed_s
        Detection time in seconds.
    """

    event_table: str
    stream_reason: np.ndarray
    reason_names: tuple[str, ...]
    account_score: np.ndarray
    account_flags: np.ndarray
    account_reason: np.ndarray
    accounts: pd.DataFrame
    features: pd.DataFrame
    farm_group: np.ndarray
    rules_run: tuple[str, ...]
    rules_skipped: dict[str, str]
    settings: FraudSettings = field(default_factory=FraudSettings)
    elapsed_s: float = 0.0
    n_streams: int = 0
    campaign_group: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    campaign_tracks: list[np.ndarray] = field(default_factory=list)
    rule_ratio: np.ndarray = field(default_factory=lambda: np.zeros((0, len(ACCOUNT_REASONS))))

    @property
    def stream_flagged(self) -> np.ndarray:
        """Bool, shape (n_events,): rows flagged as fraudulent."""
        return self.stream_reason > 0

    @property
    def account_flagged(self) -> np.ndarray:
        """Bool, shape (n_users,): accounts flagged by an account rule."""
        return self.account_reason > 0

    def summary(self) -> dict[str, object]:
        """JSON-able summary for the artifact manifest.

        Streams are counted once, under their one reason; accounts are counted
        under every reason that fired (``flagged_accounts_per_reason``) and
        under their main reason (``flagged_accounts_per_main_reason``), whose
        counts add up to ``flagged_accounts``.
        """
        per_stream = np.bincount(self.stream_reason, minlength=len(self.reason_names) + 1)
        per_main = np.bincount(self.account_reason, minlength=len(ACCOUNT_REASONS) + 1)
        per_rule = self.account_flags.sum(axis=0)
        return {
            "event_table": self.event_table,
            "events": int(len(self.stream_reason)),
            "streams": int(self.n_streams),
            "flagged_streams": int(per_stream[1:].sum()),
            "flagged_streams_per_reason": {
                name: int(c) for name, c in zip(self.reason_names, per_stream[1:], strict=True)
            },
            "accounts": int(len(self.account_reason)),
            "flagged_accounts": int(self.account_flagged.sum()),
            "flagged_accounts_per_reason": {
                r: int(c) for r, c in zip(ACCOUNT_REASONS, per_rule, strict=True)
            },
            "flagged_accounts_per_main_reason": {
                r: int(c) for r, c in zip(ACCOUNT_REASONS, per_main[1:], strict=True)
            },
            "farms": int(self.farm_group.max()) + 1 if len(self.farm_group) else 0,
            "campaigns": len(self.campaign_tracks),
            "rules_run": list(self.rules_run),
            "rules_skipped": dict(self.rules_skipped),
            "settings": self.settings.to_dict(),
            "elapsed_s": round(float(self.elapsed_s), 3),
        }


class FraudDetector:
    """Flag fraudulent streams and accounts of a validated contract.

    Parameters
    ----------
    settings
        Thresholds; defaults documented in :class:`FraudSettings` and ``docs/fraud.md``.
    """

    def __init__(self, settings: FraudSettings | None = None) -> None:
        self.settings = settings or FraudSettings()

    def detect(self, data: ContractData) -> FraudResult:
        """Run every rule the event table allows.

        Parameters
        ----------
        data
            Validated contract (``streams`` or ``plays``).

        Returns
        -------
        FraudResult
        """
        s = self.settings
        t0 = time.perf_counter()
        n_users, n_tracks = len(data.users), len(data.tracks)
        ev = data.events
        user = ev["user_idx"].to_numpy()
        track = ev["track_idx"].to_numpy()
        track_artist = pd.factorize(data.tracks["artist_id"])[0].astype(np.int64)
        off = set(s.disabled_rules)
        skipped: dict[str, str] = {}
        has_time = data.event_table == "streams"

        # --- which rules run
        run: list[str] = []
        for r in STREAM_REASONS:
            if r in off:
                skipped[r] = _DISABLED
            elif not has_time:
                skipped[r] = _NO_TIME
            else:
                run.append(r)
        account_run: list[str] = []
        for r in ACCOUNT_REASONS:
            name = f"account:{r}"
            if name in off:
                skipped[name] = _DISABLED
            elif not has_time and r not in PROFILE_REASONS:
                skipped[name] = _NO_TIME
            else:
                account_run.append(r)
        run.extend(f"account:{r}" for r in account_run)

        if has_time:
            # The same rule as stream_features' own is_stream (checked below).
            is_stream = ev["ms_played"].to_numpy() >= s.min_stream_ms
            counts = count_matrix(user[is_stream], track[is_stream], None, n_users, n_tracks)
        else:
            is_stream = np.ones(len(ev), bool)
            counts = count_matrix(user, track, ev["plays"].to_numpy(), n_users, n_tracks)

        def find_groups() -> tuple[FarmGroups | None, CampaignGroups | None]:
            farms = camps = None
            if "farm" in account_run:
                if has_time:
                    hour = timestamps_ns(ev["ts"])[is_stream] // NS_PER_HOUR
                    farms = find_farms(counts, s, user[is_stream], hour)
                else:
                    farms = find_farms(counts, s)
            if "campaign" in account_run:
                camps = find_campaigns(counts, track_artist, s)
            return farms, camps

        # The group rules (farms, campaigns) and the stream rules read the same
        # inputs and nothing of each other: the groups run in a second thread.
        # Both are long numpy passes that release the GIL, so on two cores the
        # stage takes about the longer of the two rather than their sum.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fraud-groups") as pool:
            groups = pool.submit(find_groups)
            sf = None
            if has_time:
                duration = data.tracks["duration_ms"].to_numpy().astype(np.int64)
                sf = stream_features(ev, duration, n_users, s)
                if not np.array_equal(sf.is_stream, is_stream):  # pragma: no cover
                    raise AssertionError("stream_features counts streams differently")
            features = profile_features(counts, track_artist, s)
            if sf is not None:
                created = data.users["created_at"].to_numpy(dtype="datetime64[ns]").view(np.int64)
                add_time_features(features, sf, created)
                features["max_track_24h_streams"] = track_window_max(
                    user,
                    track,
                    timestamps_ns(ev["ts"]),
                    is_stream,
                    counts,
                    s.loop_daily_streams,
                    NS_PER_DAY,
                )
            farms, camps = groups.result()
        t_stream = time.perf_counter()

        # --- account rules
        conds = rule_conditions(s, has_time=has_time)
        ratios = np.zeros((n_users, len(ACCOUNT_REASONS)))
        farm_group = np.full(n_users, -1, np.int64)
        campaign_group = np.full(n_users, -1, np.int64)
        campaign_tracks: list[np.ndarray] = []
        for r in account_run:
            j = ACCOUNT_REASONS.index(r)
            if r == "farm":
                assert farms is not None
                farm_group = farms.group
                features["farm_size"] = farms.group_size
                features["farm_best_jaccard"] = farms.best_jaccard
                features["farm_best_coactivity"] = farms.best_coactivity
                ratios[:, j] = farm_ratio(farms, s, has_time)
            elif r == "campaign":
                assert camps is not None
                campaign_group = camps.group
                campaign_tracks = [core for core, _ in camps.cores]
                features["campaign_size"] = camps.size
                features["campaign_artists"] = camps.artists
                features["campaign_share"] = camps.share
                features["campaign_lockstep"] = camps.lockstep
                ratios[:, j] = campaign_ratio(camps)
            else:
                ratios[:, j] = evaluate_rule(features, conds[r])
        fired = ratios >= 1.0
        # Taste-only rules support a flag but do not raise one (see SUPPORTING_REASONS).
        primary = np.array(
            [s.taste_rules_flag_alone or r not in SUPPORTING_REASONS for r in ACCOUNT_REASONS],
            dtype=bool,
        )
        flagged = fired[:, primary].any(axis=1)
        fired &= flagged[:, None]  # supporting reasons are reported on flagged accounts only
        score = severity(ratios[:, primary]).max(axis=1, initial=0.0)
        # The main reason: the first primary rule that fired, in priority order.
        main = np.where(fired & primary[None, :], 1, 0).argmax(axis=1)
        account_reason = np.where(flagged, main + 1, 0).astype(np.int16)

        # --- one reason per stream: the account's main reason, else a stream reason
        stream_reason = np.zeros(len(ev), np.int16)
        if sf is not None:
            stream_reason[:] = sf.stream_reason
        main_code = np.where(flagged, account_reason + len(STREAM_REASONS), 0).astype(np.int16)
        row_code = main_code[user]
        account_rows = (row_code > 0) & is_stream
        stream_reason[account_rows] = row_code[account_rows]

        flagged_streams = np.bincount(user[stream_reason > 0], minlength=n_users)
        accounts = _accounts_frame(
            data,
            flagged,
            fired,
            account_reason,
            score,
            features,
            flagged_streams,
            farm_group,
            campaign_group,
        )
        elapsed = time.perf_counter() - t0
        result = FraudResult(
            event_table=data.event_table,
            stream_reason=stream_reason,
            reason_names=REASON_NAMES,
            account_score=score,
            account_flags=fired,
            account_reason=account_reason,
            accounts=accounts,
            features=features,
            farm_group=farm_group,
            rules_run=tuple(run),
            rules_skipped={k: skipped[k] for k in ALL_RULES if k in skipped},
            settings=s,
            elapsed_s=elapsed,
            n_streams=int(is_stream.sum()),
            campaign_group=campaign_group,
            campaign_tracks=campaign_tracks,
            rule_ratio=ratios,
        )
        logger.info(
            "fraud: %d of %d accounts and %d of %d %s flagged in %.2fs (events %.2fs); %d rules run, %d skipped",
            int(flagged.sum()),
            n_users,
            int((stream_reason > 0).sum()),
            len(ev),
            data.event_table,
            elapsed,
            t_stream - t0,
            len(run),
            len(skipped),
        )
        return result


def _accounts_frame(
    data: ContractData,
    flagged: np.ndarray,
    fired: np.ndarray,
    account_reason: np.ndarray,
    score: np.ndarray,
    features: pd.DataFrame,
    flagged_streams: np.ndarray,
    farm_group: np.ndarray,
    campaign_group: np.ndarray,
) -> pd.DataFrame:
    """One row per flagged account, highest score first."""
    idx = np.flatnonzero(flagged)
    codes = np.array(ACCOUNT_REASONS, dtype=object)
    # Reasons in priority order, so the main reason comes first.
    reasons = [";".join(codes[row]) for row in fired[idx]]
    frame = pd.DataFrame(
        {
            "user_idx": idx.astype(np.int64),
            "user_id": data.users["user_id"].to_numpy()[idx],
            "reasons": pd.Series(reasons, dtype=object),
            "main_reason": codes[account_reason[idx].astype(np.int64) - 1]
            if len(idx)
            else np.zeros(0, object),
            "score": score[idx],
            "streams": features["streams"].to_numpy()[idx],
            "flagged_streams": flagged_streams[idx].astype(np.int64),
            "farm_id": farm_group[idx],
            "campaign_id": campaign_group[idx],
        }
    )
    return frame.sort_values(
        ["score", "user_idx"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


class FraudFilter:
    """Event filter (see :class:`recsys.events.EventFilter`) dropping fraudulent streams.

    Parameters
    ----------
    detector
        The detector to run; a default one when omitted.

    Attributes
    ----------
    name
        ``"fraud"``: the filter's name in the event report.
    result
        The last :class:`FraudResult`, ``None`` before the first call.
    """

    name = "fraud"

    def __init__(self, detector: FraudDetector | None = None) -> None:
        self.detector = detector or FraudDetector()
        self.result: FraudResult | None = None

    def __call__(self, data: ContractData, events: pd.DataFrame) -> np.ndarray:
        """Boolean mask over ``events`` (the contract's event table): ``True`` drops the row.

        Raises
        ------
        ValueError
            If ``events`` is not the contract's event table (row counts differ).
        """
        result = self.detector.detect(data)
        self.result = result
        if len(events) != len(result.stream_reason):
            raise ValueError(
                f"FraudFilter expects the contract's whole {data.event_table} table "
                f"({len(result.stream_reason)} rows), got {len(events)} rows"
            )
        return result.stream_flagged
