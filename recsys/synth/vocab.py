"""Fixed vocabulary of the synthetic platform: styles and the words names are made of."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Style:
    """One music style.

    ``weight`` is its share of listening, ``duration_s`` the typical track
    length and ``farm_weight`` how much content farms favour it (functional
    music: lo-fi, ambient, piano).
    """

    name: str
    family: str
    weight: float
    duration_s: float
    farm_weight: float


STYLES: tuple[Style, ...] = (
    Style("pop", "pop", 10.0, 205, 1.0),
    Style("synthpop", "pop", 2.0, 240, 0.2),
    Style("indie rock", "rock", 6.0, 230, 0.1),
    Style("alternative rock", "rock", 5.0, 240, 0.1),
    Style("classic rock", "rock", 4.0, 270, 0.05),
    Style("metal", "rock", 3.5, 300, 0.05),
    Style("punk", "rock", 2.0, 160, 0.05),
    Style("hip hop", "urban", 9.0, 215, 0.5),
    Style("r&b", "urban", 5.0, 225, 0.3),
    Style("soul", "urban", 2.0, 230, 0.1),
    Style("techno", "electronic", 4.0, 400, 0.5),
    Style("house", "electronic", 5.0, 330, 0.8),
    Style("drum and bass", "electronic", 2.0, 310, 0.2),
    Style("ambient", "chill", 2.0, 330, 4.0),
    Style("lo-fi", "chill", 3.0, 140, 5.0),
    Style("jazz", "jazz", 3.0, 330, 0.8),
    Style("classical", "classical", 3.0, 420, 2.0),
    Style("folk", "folk", 3.0, 220, 0.2),
    Style("country", "folk", 3.0, 200, 0.1),
    Style("latin", "world", 5.0, 210, 0.3),
    Style("reggae", "world", 2.0, 230, 0.1),
)

STYLE_NAMES: tuple[str, ...] = tuple(s.name for s in STYLES)

# Affinities across families (a taste that spans them is common).
_CROSS_RELATED = (
    ("lo-fi", "hip hop"),
    ("ambient", "techno"),
    ("ambient", "classical"),
    ("soul", "jazz"),
    ("synthpop", "indie rock"),
    ("folk", "indie rock"),
    ("pop", "r&b"),
    ("pop", "latin"),
    ("house", "pop"),
    ("reggae", "hip hop"),
    ("drum and bass", "hip hop"),
    ("punk", "alternative rock"),
    ("lo-fi", "jazz"),
)


def related_matrix() -> np.ndarray:
    """Boolean ``(n_styles, n_styles)`` matrix: styles a listener of one tends to like.

    Styles of the same family are related, plus a few cross-family pairs.
    The diagonal is false.
    """
    idx = {name: i for i, name in enumerate(STYLE_NAMES)}
    fam = np.array([s.family for s in STYLES])
    rel = fam[:, None] == fam[None, :]
    for a, b in _CROSS_RELATED:
        rel[idx[a], idx[b]] = rel[idx[b], idx[a]] = True
    np.fill_diagonal(rel, False)
    return rel


def _words(text: str) -> np.ndarray:
    return np.array(text.split())


#: Tags that are not styles (Last.fm-like noise).
GENERIC_TAGS: tuple[str, ...] = (
    "seen live",
    "favorites",
    "female vocalists",
    "male vocalists",
    "instrumental",
    "80s",
    "90s",
    "00s",
    "love",
    "party",
    "underground",
    "workout",
    "summer",
    "melancholic",
)
#: Tags content farms put on their artists.
FARM_TAGS: tuple[str, ...] = ("study", "sleep", "focus", "relaxing", "chill", "background")

ADJECTIVES = _words(
    """Blue Golden Silent Broken Electric Velvet Wild Neon Hollow Quiet Burning Lonely
    Crimson Distant Endless Fading Gentle Hidden Midnight Paper Restless Silver Sweet
    Tender Wicked Young Frozen Bright Sacred Lost Northern Southern Little Heavy Cosmic
    Slow Secret Lucky Faded Glass"""
)
NOUNS = _words(
    """Heart River Night Summer Fire Dream City Ocean Shadow Light Road Mirror Garden
    Letter Storm Moon Star Wave Window Echo Horizon Thunder Rain Island Desert Machine
    Angel Ghost Highway Season Signal Harbor Valley Engine Satellite Forest Memory Tide
    Flower Stranger"""
)
FIRST_NAMES = _words(
    """Ava Leo Maya Noah Iris Felix Nora Oscar Lena Hugo Clara Jonas Mila Theo Ruby
    Elias Zoe Arlo Ines Milo Sofia Ezra Luna Omar Freya Kai Alma Rafael Yara Tomas"""
)
LAST_NAMES = _words(
    """Rivers Stone Vega Marlow Santos Keller Okafor Lindqvist Moreau Tanaka Novak
    Silva Hart Quinn Bauer Castillo Fontaine Reyes Walsh Kowalski Haddad Ferreira
    Nakamura Dubois Petrov Mensah Larsen Costa Byrne Ortiz"""
)
LABEL_WORDS = _words(
    """Atlas Meridian Sonora Northstar Parallel Harbor Echo Lantern Copper Orbit Kite
    Granite Velvet Riverside Beacon Monolith Aurora Basement Driftwood Foxglove Static
    Tidal Ember Cobalt Saffron Juniper Nimbus Quarry Thistle Vantage"""
)
LABEL_SUFFIXES = np.array(["Records", "Music", "Recordings", "Sound", "Audio", "Music Group"])
FARM_ADJECTIVES = _words(
    """Deep Calm Soft Peaceful Relaxing Dreamy Cozy Gentle Smooth Mellow Serene Warm"""
)
FARM_NOUNS = _words(
    """Focus Sleep Rain Study Waves Piano Beats Vibes Breeze Dreams Meditation Chill"""
)
EDITORS: tuple[str, ...] = (
    "editor.amara",
    "editor.bjorn",
    "editor.chen",
    "editor.dolores",
    "editor.emeka",
    "editor.fatima",
    "editor.gustavo",
    "editor.hana",
)
