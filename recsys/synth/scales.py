"""Sizes of the synthetic platform.

A :class:`Scale` holds every knob that changes with the size of the platform;
the behavioural constants (skip rates, session lengths, ...) live next to the
code that uses them. ``SCALES`` maps the four named scales to their settings;
``dataclasses.replace(SCALES["tiny"], bot_share=0.1)`` makes a variant.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    """Size and mix of one synthetic platform.

    Parameters
    ----------
    name
        Name reported in the summary and in ``_truth/meta.json``.
    n_users
        Genuine listeners (bot accounts come on top, sized from ``bot_share``).
    n_tracks
        Tracks in the catalogue, content-farm tracks included.
    n_artists
        Artists, content-farm artists included.
    n_labels
        Labels: majors, independent labels and content-farm labels.
    n_streams
        Target number of genuine plays over the window (the actual count is
        within a few percent).
    bot_share
        Fraction of all streams that bots produce.
    n_farms
        Stream farms (groups of accounts sharing a catalogue of target tracks).
    n_farm_labels
        Labels that front content farms (AI tracks uploaded in bulk).
    n_majors
        Major labels (verified, many artists).
    farm_track_share
        Fraction of the catalogue uploaded by content farms.
    farm_size
        Inclusive range of accounts per stream farm.
    bot_mix
        Split of the bot streams between loop bots, stream farms and
        bought-stream accounts.
    window_days
        Length of the streams window, ending at the platform's "now".
    new_release_share
        Fraction of human tracks released in the last four weeks by
        established artists.
    """

    name: str
    n_users: int
    n_tracks: int
    n_artists: int
    n_labels: int
    n_streams: int
    bot_share: float
    n_farms: int
    n_farm_labels: int
    n_majors: int
    farm_track_share: float = 0.12
    farm_size: tuple[int, int] = (20, 200)
    bot_mix: tuple[float, float, float] = (0.2, 0.6, 0.2)
    window_days: int = 90
    new_release_share: float = 0.015

    def __post_init__(self) -> None:
        if self.n_labels < self.n_majors + self.n_farm_labels + 4:
            raise ValueError("n_labels must leave room for at least 4 independent labels")
        if not 0.0 <= self.bot_share < 0.5:
            raise ValueError("bot_share must be in [0, 0.5)")
        if self.window_days < 35:
            raise ValueError("window_days must cover the four weeks of new releases")
        if abs(sum(self.bot_mix) - 1.0) > 1e-9:
            raise ValueError("bot_mix must sum to 1")


SCALES: dict[str, Scale] = {
    s.name: s
    for s in (
        # Unit tests: about a second.
        Scale(
            name="tiny",
            n_users=200,
            n_tracks=600,
            n_artists=80,
            n_labels=14,
            n_streams=20_000,
            bot_share=0.06,
            n_farms=1,
            n_farm_labels=2,
            n_majors=2,
        ),
        # The demo: a few seconds.
        Scale(
            name="small",
            n_users=3_000,
            n_tracks=8_000,
            n_artists=1_000,
            n_labels=80,
            n_streams=400_000,
            bot_share=0.05,
            n_farms=3,
            n_farm_labels=3,
            n_majors=3,
        ),
        Scale(
            name="medium",
            n_users=30_000,
            n_tracks=40_000,
            n_artists=5_000,
            n_labels=300,
            n_streams=4_000_000,
            bot_share=0.04,
            n_farms=8,
            n_farm_labels=5,
            n_majors=4,
        ),
        # The shape of the Last.fm-360K benchmark: ~360K users, >= 17M distinct
        # user-track pairs.
        Scale(
            name="large",
            n_users=360_000,
            n_tracks=160_000,
            n_artists=20_000,
            n_labels=1_200,
            n_streams=28_000_000,
            bot_share=0.04,
            n_farms=12,
            n_farm_labels=10,
            n_majors=4,
        ),
    )
}
