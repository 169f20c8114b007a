"""The catalogue side of the platform: labels, artists, tracks, tags, editorial data.

Everything is held as integer-coded numpy arrays indexed by an internal
position (label ``i``, artist ``i``, track ``i``); public ids are assigned when
the tables are written. Times are milliseconds and days relative to the start
of the streams window (negative: before the window).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from recsys.contract.schema import AI_DISCLOSURES, LABEL_STATUSES, TRACK_STATUSES
from recsys.synth import vocab
from recsys.synth._arrays import MS_PER_DAY, join_words, pick, segments
from recsys.synth.scales import Scale

logger = logging.getLogger(__name__)

# Integer codes into the contract's enum tuples.
VERIFIED, TRUSTED, UNVERIFIED, BLOCKED = (LABEL_STATUSES.index(s) for s in LABEL_STATUSES)
DISCLOSE_NONE = AI_DISCLOSURES.index("none")
DISCLOSE_ASSISTED = AI_DISCLOSURES.index("assisted")
DISCLOSE_GENERATED = AI_DISCLOSURES.index("generated")
ACTIVE = TRACK_STATUSES.index("active")
TAKEN_DOWN = TRACK_STATUSES.index("taken_down")

LABEL_KINDS = ("major", "indie", "content_farm")
ARTIST_KINDS = ("human", "content_farm")

#: Release day given to tracks whose release date is unknown (treated as old).
UNKNOWN_RELEASE_DAY = -100_000
#: Days of "new releases" before now.
NEW_RELEASE_DAYS = 28
#: Share of a style's listening that goes to content-farm tracks (genuine users
#: stumble on them in playlists and autoplay).
FARM_LISTEN_SHARE = 0.02


@dataclass
class Catalogue:
    """Integer-coded catalogue. Arrays of one entity share their length."""

    n_styles: int
    # labels
    label_kind: np.ndarray  # index into LABEL_KINDS
    label_status: np.ndarray  # index into LABEL_STATUSES
    label_name: np.ndarray
    # artists
    artist_kind: np.ndarray  # index into ARTIST_KINDS
    artist_style: np.ndarray
    artist_label: np.ndarray
    artist_verified: np.ndarray
    artist_popularity: np.ndarray
    artist_pct: np.ndarray  # popularity percentile among human artists (farms: 0)
    artist_name: np.ndarray
    # tracks
    track_artist: np.ndarray
    track_style: np.ndarray
    track_farm: np.ndarray  # uploaded by a content farm
    track_ai: np.ndarray  # truly AI-generated
    track_disclosure: np.ndarray  # index into AI_DISCLOSURES
    track_ai_score: np.ndarray  # NaN: not scanned
    track_status: np.ndarray  # index into TRACK_STATUSES
    track_release_day: np.ndarray  # UNKNOWN_RELEASE_DAY when the date is null
    track_release_known: np.ndarray
    track_new: np.ndarray  # new release by an established artist (last 4 weeks)
    track_duration_ms: np.ndarray
    track_weight: np.ndarray  # share of genuine listening within its style
    track_title: np.ndarray
    # artist_tags
    tag_artist: np.ndarray
    tag_name: np.ndarray
    tag_weight: np.ndarray
    # editorial (times in ms relative to the window start)
    seed_a: np.ndarray
    seed_b: np.ndarray
    seed_editor: np.ndarray
    seed_created_ms: np.ndarray
    rej_a: np.ndarray
    rej_b: np.ndarray
    rej_editor: np.ndarray
    rej_created_ms: np.ndarray
    # opt-outs
    opt_out_artists: np.ndarray
    opt_out_labels: np.ndarray

    @property
    def n_labels(self) -> int:
        return len(self.label_kind)

    @property
    def n_artists(self) -> int:
        return len(self.artist_kind)

    @property
    def n_tracks(self) -> int:
        return len(self.track_artist)


def _percentile(x: np.ndarray) -> np.ndarray:
    """Rank of each value scaled to [0, 1] (ties broken by position)."""
    if len(x) < 2:
        return np.ones(len(x))
    return np.argsort(np.argsort(x, kind="stable"), kind="stable") / (len(x) - 1)


def _labels(rng: np.random.Generator, scale: Scale) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_maj, n_farm = scale.n_majors, scale.n_farm_labels
    n_ind = scale.n_labels - n_maj - n_farm
    kind = np.repeat(np.arange(3), [n_maj, n_ind, n_farm])
    # Majors are verified; independents come in every status (the first four
    # are forced so that even the tiny platform has one of each).
    ind_status = rng.choice(4, size=n_ind, p=[0.45, 0.2, 0.3, 0.05])
    ind_status[:4] = [VERIFIED, TRUSTED, UNVERIFIED, BLOCKED]
    # Content farms hide behind unverified or blocked labels, one sneaks in as
    # a trusted partner.
    farm_status = rng.choice([UNVERIFIED, BLOCKED], size=n_farm)
    farm_status[: min(3, n_farm)] = [BLOCKED, UNVERIFIED, TRUSTED][: min(3, n_farm)]
    status = np.concatenate([np.full(n_maj, VERIFIED), ind_status, farm_status])

    name = np.concatenate(
        [
            join_words(pick(rng, vocab.LABEL_WORDS, n_maj), "Music Group"),
            join_words(pick(rng, vocab.LABEL_WORDS, n_ind), pick(rng, vocab.LABEL_SUFFIXES, n_ind)),
            join_words(
                pick(rng, vocab.FARM_ADJECTIVES, n_farm),
                pick(rng, vocab.FARM_NOUNS, n_farm),
                "Media",
            ),
        ]
    )
    return kind, status, name


def build_catalogue(rng: np.random.Generator, scale: Scale) -> Catalogue:
    """Draw labels, artists, tracks, tags, editorial relations and opt-outs.

    Parameters
    ----------
    rng
        The platform's random generator.
    scale
        Sizes.

    Returns
    -------
    Catalogue
        The integer-coded catalogue.
    """
    styles = vocab.STYLES
    n_styles = len(styles)
    style_w = np.array([s.weight for s in styles])
    style_w /= style_w.sum()
    farm_style_w = np.array([s.farm_weight for s in styles])
    farm_style_w /= farm_style_w.sum()
    W = scale.window_days

    label_kind, label_status, label_name = _labels(rng, scale)
    majors = np.flatnonzero(label_kind == 0)
    indies = np.flatnonzero(label_kind == 1)
    farm_labels = np.flatnonzero(label_kind == 2)

    # ---- artists -------------------------------------------------------
    n_farm_tracks = max(scale.n_farm_labels, round(scale.farm_track_share * scale.n_tracks))
    n_fa = max(scale.n_farm_labels, n_farm_tracks // 40)
    n_ha = scale.n_artists - n_fa
    n_ht = scale.n_tracks - n_farm_tracks
    if n_ha < n_styles or n_ht < n_ha:
        raise ValueError("scale too small: need an artist per style and a track per artist")

    h_style = rng.choice(n_styles, size=n_ha, p=style_w)
    h_style[:n_styles] = np.arange(n_styles)  # every style has artists
    h_pop = rng.lognormal(0.0, 1.5, n_ha)
    h_pct = _percentile(h_pop)
    # Popular artists tend to sign with majors.
    to_major = rng.random(n_ha) < 0.1 + 0.6 * h_pct
    major_share = rng.dirichlet(np.full(len(majors), 3.0))
    ind_w = 1.0 / (rng.permutation(len(indies)) + 1.0) ** 0.8
    h_label = np.where(
        to_major,
        majors[rng.choice(len(majors), size=n_ha, p=major_share)],
        indies[rng.choice(len(indies), size=n_ha, p=ind_w / ind_w.sum())],
    )
    # The four forced independents get at least one artist each.
    for j, lab in enumerate(indies[:4]):
        if not np.any(h_label == lab):
            h_label[n_styles + j if n_ha > n_styles + j else j] = lab
    st = label_status[h_label]
    p_ver = np.select(
        [(st == VERIFIED) | (st == TRUSTED), st == UNVERIFIED], [0.8 + 0.18 * h_pct, 0.45], 0.15
    )
    h_verified = rng.random(n_ha) < p_ver

    f_label = farm_labels[np.arange(n_fa) % len(farm_labels)]
    f_style = rng.choice(n_styles, size=n_fa, p=farm_style_w)
    f_pop = rng.lognormal(-2.0, 0.5, n_fa)
    sneaky = label_status[f_label] == TRUSTED
    f_verified = rng.random(n_fa) < np.where(sneaky, 0.6, 0.08)

    artist_kind = np.r_[np.zeros(n_ha, np.int8), np.ones(n_fa, np.int8)]
    artist_style = np.r_[h_style, f_style]
    artist_label = np.r_[h_label, f_label]
    artist_verified = np.r_[h_verified, f_verified]
    artist_pop = np.r_[h_pop, f_pop]
    artist_pct = np.r_[h_pct, np.zeros(n_fa)]
    pattern = rng.integers(0, 3, n_ha)
    h_name = np.select(
        [pattern == 0, pattern == 1],
        [
            join_words(pick(rng, vocab.FIRST_NAMES, n_ha), pick(rng, vocab.LAST_NAMES, n_ha)),
            np.char.add(
                join_words("The", pick(rng, vocab.ADJECTIVES, n_ha), pick(rng, vocab.NOUNS, n_ha)),
                "s",
            ),
        ],
        join_words(pick(rng, vocab.NOUNS, n_ha), pick(rng, vocab.NOUNS, n_ha)),
    )
    f_name = join_words(
        pick(rng, vocab.FARM_ADJECTIVES, n_fa),
        pick(rng, vocab.FARM_NOUNS, n_fa),
        rng.integers(1, 100, n_fa),
    )
    artist_name = np.r_[h_name.astype(object), f_name.astype(object)]

    # ---- tracks --------------------------------------------------------
    h_counts = 1 + rng.multinomial(
        n_ht - n_ha, _norm(rng.lognormal(0.0, 0.8, n_ha) * (0.3 + h_pct))
    )
    f_counts = 1 + rng.multinomial(n_farm_tracks - n_fa, _norm(rng.lognormal(0.0, 0.5, n_fa)))
    t_artist, t_rank, _ = segments(np.r_[h_counts, f_counts])
    n_tracks = len(t_artist)
    farm = artist_kind[t_artist] == 1
    human = ~farm
    t_style = artist_style[t_artist]

    # Popularity within a style: the artist's popularity times a power law over
    # the artist's tracks (one or two hits, a long tail).
    weight = artist_pop[t_artist] / (t_rank + 1.0) ** 0.9 * rng.lognormal(0.0, 0.6, n_tracks)

    # Release days: the back catalogue spreads over decades, skewed recent.
    release = -(1 + np.minimum(rng.exponential(2200.0, n_tracks), 22_000)).astype(np.int64)
    h_idx = np.flatnonzero(human)
    established = h_idx[artist_pct[t_artist[h_idx]] >= 0.6]
    n_new = min(len(established), max(3, round(scale.new_release_share * n_ht)))
    new_idx = rng.choice(established, size=n_new, replace=False)
    release[new_idx] = W - 1 - rng.integers(0, NEW_RELEASE_DAYS, n_new)
    # A new single by an established artist is pushed: like one of their hits.
    weight[new_idx] = artist_pop[t_artist[new_idx]] * rng.uniform(0.5, 2.0, n_new)
    new = np.zeros(n_tracks, bool)
    new[new_idx] = True
    # Releases earlier in the window, by anyone.
    others = np.setdiff1d(h_idx, new_idx)
    mid_idx = rng.choice(others, size=max(1, round(0.01 * n_ht)), replace=False)
    release[mid_idx] = rng.integers(0, W - NEW_RELEASE_DAYS, len(mid_idx))
    # Content farms upload continuously over the last two years.
    f_idx = np.flatnonzero(farm)
    release[f_idx] = -rng.integers(1, 730, len(f_idx))
    f_in_window = f_idx[rng.random(len(f_idx)) < 0.12]
    release[f_in_window] = rng.integers(0, W, len(f_in_window))
    # A few old tracks have no known release date.
    known = np.ones(n_tracks, bool)
    known[human & (release < -365) & (rng.random(n_tracks) < 0.005)] = False
    release[~known] = UNKNOWN_RELEASE_DAY

    dur_s = np.array([s.duration_s for s in styles])[t_style] * rng.lognormal(0.0, 0.28, n_tracks)
    # Farms keep tracks short: more plays per listening hour.
    dur_s[farm] = rng.uniform(75, 165, farm.sum())
    duration = np.clip(np.round(dur_s * 1000), 60_000, 1_200_000).astype(np.int64)

    # AI: what was declared and what the detector says.
    disclosure = np.full(n_tracks, DISCLOSE_NONE, np.int8)
    score = rng.beta(1.0, 25.0, n_tracks)
    assisted = human & (rng.random(n_tracks) < 0.03)
    disclosure[assisted] = DISCLOSE_ASSISTED
    score[assisted] = 0.05 + 0.4 * rng.beta(2.0, 3.0, assisted.sum())
    false_pos = human & ~assisted & (rng.random(n_tracks) < 0.003)
    score[false_pos] = rng.uniform(0.5, 0.8, false_pos.sum())
    score[human & ~assisted & (rng.random(n_tracks) < 0.25)] = np.nan  # never scanned
    f_sneaky = label_status[artist_label[t_artist[f_idx]]] == TRUSTED
    declared = rng.random(len(f_idx)) < np.where(f_sneaky, 0.1, 0.5)
    disclosure[f_idx[declared]] = DISCLOSE_GENERATED
    f_score = np.where(
        declared,
        0.6 + 0.399 * rng.beta(5.0, 1.5, len(f_idx)),
        # The detector catches most undeclared AI tracks, not all.
        np.where(
            rng.random(len(f_idx)) < 0.85,
            0.51 + 0.48 * rng.beta(4.0, 2.0, len(f_idx)),
            rng.uniform(0.15, 0.45, len(f_idx)),
        ),
    )
    f_score[rng.random(len(f_idx)) < 0.1] = np.nan
    score[f_idx] = f_score
    ai = farm.copy()

    status = np.full(n_tracks, ACTIVE, np.int8)
    blocked_farm = farm & (label_status[artist_label[t_artist]] == BLOCKED)
    p_down = np.where(blocked_farm, 0.3, np.where(farm, 0.08, 0.008))
    status[rng.random(n_tracks) < p_down] = TAKEN_DOWN
    # A taken-down track was available only part of the window.
    weight[status == TAKEN_DOWN] *= 0.5

    # Genuine users meet farm tracks only now and then: a fixed share per style.
    style_h = np.bincount(t_style[human], weights=weight[human], minlength=n_styles)
    style_f = np.bincount(t_style[farm], weights=weight[farm], minlength=n_styles)
    factor = np.where(style_f > 0, FARM_LISTEN_SHARE * style_h / np.maximum(style_f, 1e-300), 0.0)
    weight[farm] *= factor[t_style[farm]]

    pattern = rng.integers(0, 3, n_tracks)
    title = np.select(
        [pattern == 0, pattern == 1],
        [
            join_words(pick(rng, vocab.ADJECTIVES, n_tracks), pick(rng, vocab.NOUNS, n_tracks)),
            join_words(pick(rng, vocab.NOUNS, n_tracks), "of", pick(rng, vocab.NOUNS, n_tracks)),
        ],
        join_words(
            pick(rng, vocab.ADJECTIVES, n_tracks),
            pick(rng, vocab.NOUNS, n_tracks),
            pick(rng, vocab.NOUNS, n_tracks),
        ),
    ).astype(object)
    title[f_idx] = join_words(
        pick(rng, vocab.FARM_ADJECTIVES, len(f_idx)),
        pick(rng, vocab.FARM_NOUNS, len(f_idx)),
        rng.integers(1, 1000, len(f_idx)),
    )

    tags = _tags(rng, artist_kind, artist_style)
    seeds, rejections = _editorial(
        rng, artist_kind, artist_style, artist_verified, artist_pop, artist_label, label_status
    )
    opt_a, opt_l = _opt_outs(
        rng, artist_kind, artist_verified, artist_pop, artist_label, label_kind, label_status
    )

    cat = Catalogue(
        n_styles=n_styles,
        label_kind=label_kind,
        label_status=label_status,
        label_name=label_name,
        artist_kind=artist_kind,
        artist_style=artist_style,
        artist_label=artist_label,
        artist_verified=artist_verified,
        artist_popularity=artist_pop,
        artist_pct=artist_pct,
        artist_name=artist_name,
        track_artist=t_artist,
        track_style=t_style,
        track_farm=farm,
        track_ai=ai,
        track_disclosure=disclosure,
        track_ai_score=score,
        track_status=status,
        track_release_day=release,
        track_release_known=known,
        track_new=new,
        track_duration_ms=duration,
        track_weight=weight,
        track_title=title,
        tag_artist=tags[0],
        tag_name=tags[1],
        tag_weight=tags[2],
        seed_a=seeds[0],
        seed_b=seeds[1],
        seed_editor=seeds[2],
        seed_created_ms=seeds[3],
        rej_a=rejections[0],
        rej_b=rejections[1],
        rej_editor=rejections[2],
        rej_created_ms=rejections[3],
        opt_out_artists=opt_a,
        opt_out_labels=opt_l,
    )
    logger.debug(
        "catalogue: %d labels, %d artists (%d farm), %d tracks (%d farm, %d new)",
        cat.n_labels,
        cat.n_artists,
        n_fa,
        n_tracks,
        len(f_idx),
        n_new,
    )
    return cat


def _norm(w: np.ndarray) -> np.ndarray:
    return w / w.sum()


def _tags(
    rng: np.random.Generator, artist_kind: np.ndarray, artist_style: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Artist tags: the style as main tag, sometimes a related style and a noise tag."""
    n = len(artist_kind)
    farm = artist_kind == 1
    names = np.array(vocab.STYLE_NAMES + vocab.GENERIC_TAGS + vocab.FARM_TAGS, dtype=object)
    n_st, n_gen = len(vocab.STYLE_NAMES), len(vocab.GENERIC_TAGS)
    rel = vocab.related_matrix()
    rel_count = rel.sum(axis=1)
    rel_list = np.argsort(~rel, axis=1, kind="stable")  # related styles first

    tagged = rng.random(n) < np.where(farm, 0.5, 0.85)
    a_main = np.flatnonzero(tagged)
    w_main = rng.uniform(0.75, 1.0, len(a_main))

    has_rel = tagged & ~farm & (rng.random(n) < 0.6) & (rel_count[artist_style] > 0)
    a_rel = np.flatnonzero(has_rel)
    s = artist_style[a_rel]
    t_rel = rel_list[s, (rng.random(len(a_rel)) * rel_count[s]).astype(np.int64)]
    w_rel = rng.uniform(0.2, 0.6, len(a_rel))

    a_noise = np.flatnonzero(tagged & (rng.random(n) < 0.35))
    t_noise = np.where(
        farm[a_noise],
        n_st + n_gen + rng.integers(0, len(vocab.FARM_TAGS), len(a_noise)),
        n_st + rng.integers(0, n_gen, len(a_noise)),
    )
    w_noise = rng.uniform(0.05, 0.3, len(a_noise))

    artist = np.r_[a_main, a_rel, a_noise]
    tag = np.r_[artist_style[a_main], t_rel, t_noise]
    weight = np.round(np.r_[w_main, w_rel, w_noise], 3)
    order = np.lexsort((-weight, artist))
    return artist[order], names[tag[order]], weight[order]


def _editorial(
    rng: np.random.Generator,
    artist_kind: np.ndarray,
    artist_style: np.ndarray,
    artist_verified: np.ndarray,
    artist_pop: np.ndarray,
    artist_label: np.ndarray,
    label_status: np.ndarray,
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Editorial similar-artist seeds (same style, verified) and a few rejections."""
    eligible = (artist_kind == 0) & artist_verified
    pairs_a: list[np.ndarray] = []
    pairs_b: list[np.ndarray] = []
    for s in range(int(artist_style.max()) + 1):
        pool = np.flatnonzero(eligible & (artist_style == s))
        if len(pool) < 2:
            continue
        # Editors curate around the popular artists of a style.
        n_src = max(1, int(np.ceil(0.15 * len(pool))))
        src = pool[np.argsort(-artist_pop[pool], kind="stable")[:n_src]]
        k = np.minimum(1 + rng.poisson(1.5, n_src), len(pool) - 1)
        a = np.repeat(src, k)
        w = np.sqrt(artist_pop[pool])
        b = pool[rng.choice(len(pool), size=len(a), p=w / w.sum())]
        pairs_a.append(a)
        pairs_b.append(b)
    a = np.concatenate(pairs_a) if pairs_a else np.zeros(0, np.int64)
    b = np.concatenate(pairs_b) if pairs_b else np.zeros(0, np.int64)
    keep = a != b
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    pair = np.unique(lo.astype(np.int64) * len(artist_kind) + hi)
    lo, hi = pair // len(artist_kind), pair % len(artist_kind)
    # Undirected: store each pair once, in a random direction.
    flip = rng.random(len(lo)) < 0.5
    a, b = np.where(flip, hi, lo), np.where(flip, lo, hi)
    seeds = (a, b, *_editor_stamp(rng, len(a)))

    # Rejections: cross-style suggestions and content-farm artists posing as peers.
    ver = np.flatnonzero(eligible)
    farm_artists = np.flatnonzero(artist_kind == 1)
    n_rej = max(4, len(a) // 40)
    ra = ver[rng.integers(0, len(ver), n_rej)]
    rb = ver[rng.integers(0, len(ver), n_rej)]
    for _ in range(8):  # redraw partners until the styles differ
        same = artist_style[ra] == artist_style[rb]
        if not same.any():
            break
        rb[same] = ver[rng.integers(0, len(ver), int(same.sum()))]
    to_farm = (rng.random(n_rej) < 0.5) | (artist_style[ra] == artist_style[rb])
    to_farm[0] = True
    rb[to_farm] = farm_artists[rng.integers(0, len(farm_artists), to_farm.sum())]
    keep = ra != rb
    rejections = (ra[keep], rb[keep], *_editor_stamp(rng, int(keep.sum())))
    return seeds, rejections


def _editor_stamp(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    editor = np.array(vocab.EDITORS, dtype=object)[rng.integers(0, len(vocab.EDITORS), n)]
    # Editorial work spans the last three years, up to the window start.
    created = -rng.integers(0, 3 * 365 * MS_PER_DAY, n)
    return editor, created


def _opt_outs(
    rng: np.random.Generator,
    artist_kind: np.ndarray,
    artist_verified: np.ndarray,
    artist_pop: np.ndarray,
    artist_label: np.ndarray,
    label_kind: np.ndarray,
    label_status: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """A few verified artists and independent labels that opted out of algorithmic recs."""
    cand = np.flatnonzero((artist_kind == 0) & artist_verified)
    n_a = min(len(cand), max(2, round(0.003 * len(artist_kind))))
    w = np.sqrt(artist_pop[cand])
    artists = np.sort(rng.choice(cand, size=n_a, replace=False, p=w / w.sum()))
    with_artists = np.bincount(artist_label, minlength=len(label_kind)) > 0
    lab_cand = np.flatnonzero((label_kind == 1) & (label_status == VERIFIED) & with_artists)
    n_l = min(len(lab_cand), max(1, round(0.01 * (label_kind == 1).sum())))
    labels = np.sort(rng.choice(lab_cand, size=n_l, replace=False))
    return artists, labels
