"""A published artifact, loaded and checked, ready to serve.

Memory during a reload
----------------------
A server loads the new artifact beside the one still serving, so for a while it
holds both. Two choices keep that window small:

- The FAISS indexes (on a 1M-track pool, two HNSW graphs of about 400 MB each,
  most of an artifact) are memory-mapped from their files rather than copied
  (:meth:`recsys.retrieval.VectorIndex.load` with ``mmap=True``). The process
  holds a page once it touches it: reading checks the graph (faiss walks the
  neighbour lists), and the engine compares the user index's vectors with the
  saved factors; the item index's vectors are first touched by requests, after
  the swap, when the old artifact's pages have been let go.
- The saved item factors are compared block by block through one buffer, not
  through a memory map whose pages would stay resident until it is closed.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from recsys.artifact.store import (
    ARTIST_ANSWERS_FILE,
    USER_ANSWERS_FILE,
    read_manifest,
    resolve_artifact,
)
from recsys.errors import ArtifactError
from recsys.graph.model import ArtistGraph, read_graph
from recsys.lookup import StringLookup, arrow_strings, index_rows
from recsys.retrieval import StoredAnswers, VectorIndex
from recsys.vectors import unit_rows

logger = logging.getLogger(__name__)

#: Catalogue columns an :class:`Artifact` needs itself (ids, lookups, checks).
CATALOGUE_COLUMNS = ("track_id", "artist_id", "title", "in_pool", "model_row")


@dataclass(eq=False)
class Artifact:
    """Everything a server needs from one training run.

    Rows: ``tracks`` and ``artists`` are the catalogue (all tracks, pool or
    not, so that a request naming any track can be answered precisely);
    "model items" are the pool tracks with training data, "model users" the
    consenting users with training data.

    Attributes
    ----------
    tracks
        Catalogue: ``track_id``, ``artist_id``, ``label_id``, ``title``,
        ``release_date``, ``in_pool``, ``model_row`` (-1: no vector),
        ``listeners``, ``streams`` (or the columns asked for in :meth:`load`).
    track_artist
        Artist row of each catalogue track, shape (n_tracks,).
    track_label, label_ids
        Each catalogue track's label as a code into ``label_ids`` (-1: none),
        shape (n_tracks,), int32; and the distinct label ids, shape (n_labels,).
    user_factors
        Shape (n_model_users, d).
    item_factors
        Shape (n_model_items, d).
    artist_factors
        Shape (n_artists, d), rows as in ``artists``.
    item_track
        Catalogue row of each model item, shape (n_model_items,).
    item_artist
        Artist row of each model item, shape (n_model_items,).
    seen
        CSR of booleans, shape (n_model_users, n_model_items): what each user streamed.
    user_index, item_index
        FAISS indexes over model items (ids are model item rows).
    graph
        The similar-artist graph over artist rows (empty for artifacts
        published before the graph stage).
    user_answers, artist_answers
        The indexes' answers stored at publish time for known users (rows as
        ``user_ids``) and for artists (rows as ``artists``), see
        :mod:`recsys.retrieval.answers`; ``None`` when the artifact has none.

    Notes
    -----
    Vectors are held once: when the user index stores the item factors
    unchanged (inner product, not augmented) ``item_factors`` is a read-only
    view of its storage, and when the item index stores them row-normalised
    (cosine) ``item_unit`` is a view of that; otherwise they are separate
    arrays. At a 1M-track pool with 64 factors each view saves 256 MB.
    """

    path: Path
    manifest: dict[str, Any]
    tracks: pd.DataFrame
    artists: pd.DataFrame
    labels: pd.DataFrame
    artist_tags: pd.DataFrame
    editorial_seeds: pd.DataFrame
    editorial_rejections: pd.DataFrame
    user_ids: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    artist_factors: np.ndarray
    item_track: np.ndarray
    item_artist: np.ndarray
    track_artist: np.ndarray
    seen: sp.csr_matrix
    track_label: np.ndarray
    label_ids: np.ndarray
    user_index: VectorIndex
    item_index: VectorIndex
    graph: ArtistGraph
    _user_rows: dict[str, int]
    _track_rows: StringLookup
    _artist_rows: pd.Index
    _item_unit: np.ndarray | None = None
    user_answers: StoredAnswers | None = None
    artist_answers: StoredAnswers | None = None

    @functools.cached_property
    def item_unit(self) -> np.ndarray:
        """Row-normalised item vectors, shape (n_model_items, d), computed once.

        The item index's own (cosine) storage when it has them: the very
        vectors the item-to-item search scores, and no second copy.
        """
        if self._item_unit is not None:
            return self._item_unit
        return unit_rows(self.item_factors)

    def track_ids_of(self, rows: np.ndarray | list[int]) -> list[str]:
        """Catalogue track ids of ``rows`` (shape (m,)), as Python strings.

        Read from the catalogue's Arrow strings: the artifact holds no Python
        string per track (see :class:`recsys.lookup.StringLookup`).
        """
        return self._track_rows.values(rows)

    def track_titles_of(self, rows: np.ndarray | list[int]) -> list[str | None]:
        """Titles of catalogue ``rows`` (shape (m,)); ``None`` where missing."""
        return self.track_titles.take(np.asarray(rows, np.int64)).to_pylist()

    @functools.cached_property
    def track_titles(self) -> pa.Array:
        """Catalogue titles as one Arrow string array, shape (n_tracks,), built once."""
        return arrow_strings(self.tracks["title"])

    @functools.cached_property
    def release_day(self) -> np.ndarray:
        """Release dates in whole days, shape (n_tracks,), datetime64[D] (NaT: unknown).

        Converted once per artifact and shared by every engine view of it: the
        release radar compares them with its reference day on every request.
        """
        if "release_date" in self.tracks:
            return self.tracks["release_date"].to_numpy(dtype="datetime64[D]")
        return np.full(len(self.tracks), np.datetime64("NaT"), dtype="datetime64[D]")

    @functools.cached_property
    def artist_ids(self) -> np.ndarray:
        """Artist ids, object array, shape (n_artists,)."""
        return self.artists["artist_id"].to_numpy(dtype=object)

    @functools.cached_property
    def artist_names(self) -> np.ndarray:
        """Artist names, object array, shape (n_artists,)."""
        return self.artists["name"].to_numpy(dtype=object)

    @functools.cached_property
    def gram(self) -> np.ndarray:
        """``Y^T Y`` of the item factors, shape (d, d), float64, computed once (fold-in).

        In row blocks: a float64 copy of all 1M x 64 factors would be a 512 MB
        spike in the request that first needs this.
        """
        y = self.item_factors
        out = np.zeros((y.shape[1], y.shape[1]))
        for start in range(0, len(y), _GRAM_ROWS):
            block = y[start : start + _GRAM_ROWS].astype(np.float64)
            out += block.T @ block
        return out

    @functools.cached_property
    def artist_unit(self) -> np.ndarray:
        """Row-normalised artist vectors, shape (n_artists, d), computed once."""
        return unit_rows(self.artist_factors)

    def release_index_pages(self) -> int:
        """Let go of the pages of both mapped indexes that this process holds.

        See :meth:`VectorIndex.release_pages`: the indexes stay valid, and a
        search brings back what it touches from the page cache. A server calls
        this on the artifact it has just replaced, so that the replaced
        mapping's pages are not counted beside the new artifact's while the
        last requests on the old one finish.

        Returns
        -------
        int
            Bytes of mapping advised.
        """
        return self.user_index.release_pages() + self.item_index.release_pages()

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def pool_size(self) -> int:
        return int(self.tracks["in_pool"].sum())

    def user_row(self, user_id: str) -> int | None:
        """Model row of a user, ``None`` when the model does not know them."""
        return self._user_rows.get(user_id)

    def track_rows(self, track_ids: list[str] | np.ndarray) -> np.ndarray:
        """Catalogue rows of track ids, -1 where unknown; shape (n,)."""
        return self._track_rows.get_indexer(track_ids)

    def artist_rows(self, artist_ids: list[str] | np.ndarray) -> np.ndarray:
        """Artist rows of artist ids, -1 where unknown; shape (n,)."""
        return self._artist_rows.get_indexer(np.asarray(artist_ids, dtype=object))

    def track_row(self, track_id: str) -> int:
        """Catalogue row of one track id, -1 when unknown."""
        return self._track_rows.get_loc(track_id)

    def artist_row(self, artist_id: str) -> int:
        """Artist row of one artist id, -1 when unknown."""
        return _row(self._artist_rows, artist_id)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        verify: bool = True,
        catalogue_columns: Sequence[str] | None = None,
    ) -> Artifact:
        """Load the artifact at ``path`` (or the newest one inside it).

        Parameters
        ----------
        path
            An artifact, or a directory of artifacts (the newest is loaded).
        verify
            Check every file against the manifest's checksums.
        catalogue_columns
            Columns of ``catalogue/tracks.parquet`` to read (with the ones the
            artifact itself needs: :data:`CATALOGUE_COLUMNS`); ``None``: all.
            A server reads only what its surfaces use
            (:data:`recsys.surfaces.engine.SERVING_CATALOGUE_COLUMNS`): on the
            1M-track benchmark artifact, the columns it leaves out held 28 MB.

        Raises
        ------
        ArtifactError
            Missing, incomplete or corrupted artifact: nothing is half-loaded.
        """
        t0 = time.perf_counter()
        path = resolve_artifact(path)
        manifest = read_manifest(path, verify=verify)
        try:
            # The indexes first, mapped and each let go of once read and checked, so
            # that the pages faiss's checks touch are not held while the rest loads
            # (see the module notes: memory during a reload).
            user_index = VectorIndex.load(path / "index", "user_track", mmap=True)
            user_index.release_pages()
            item_index = VectorIndex.load(path / "index", "item_item", mmap=True)
            item_index.release_pages()
            item_factors = _held_once(path / "model/item_factors.npy", user_index)
            user_index.release_pages()
            # One chunk per column: the id lookup and the titles then use the frame's
            # own Arrow strings (recsys.lookup.arrow_strings) instead of a copy.
            columns = (
                None
                if catalogue_columns is None
                else list(dict.fromkeys([*CATALOGUE_COLUMNS, *catalogue_columns]))
            )
            if columns is not None and "label_id" not in columns:
                schema = pq.read_schema(path / "catalogue/tracks.parquet")
                if "label_id" in schema.names:
                    columns.append("label_id")  # for label takedowns, as codes (below)
            tracks = (
                pq.read_table(path / "catalogue/tracks.parquet", columns=columns)
                .combine_chunks()
                .to_pandas()
            )
            artists = pd.read_parquet(path / "catalogue/artists.parquet")
            labels = pd.read_parquet(path / "catalogue/labels.parquet")
            artist_tags = pd.read_parquet(path / "catalogue/artist_tags.parquet")
            seeds = pd.read_parquet(path / "editorial/seeds.parquet")
            rejections = pd.read_parquet(path / "editorial/rejections.parquet")
            user_ids = pd.read_parquet(path / "model/users.parquet")["user_id"].to_numpy(object)
            # Mapped too: a user's row is read when that user is asked for.
            user_factors = np.load(path / "model/user_factors.npy", mmap_mode="r").view(np.ndarray)
            artist_factors = np.load(path / "model/artist_factors.npy")
            seen = _binary(sp.load_npz(path / "model/seen.npz").tocsr())
            user_answers = _stored_answers(
                path / "index" / USER_ANSWERS_FILE, len(user_ids), len(item_factors)
            )
            artist_answers = _stored_answers(
                path / "index" / ARTIST_ANSWERS_FILE, len(artists), len(item_factors)
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ArtifactError(f"{path}: cannot load artifact ({exc})") from exc
        item_unit = item_index.vectors if item_index.metric == "cosine" else None
        if item_unit is not None and item_unit.shape != item_factors.shape:
            item_unit = None

        model_row = tracks["model_row"].to_numpy()
        item_track = np.full(len(item_factors), -1, dtype=np.int64)
        has = model_row >= 0
        item_track[model_row[has]] = np.flatnonzero(has)
        artist_index = pd.Index(artists["artist_id"].to_numpy(dtype=object))
        try:
            graph = read_graph(path, artist_index)
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(f"{path}: cannot load the similar-artist graph ({exc})") from exc
        # Large columns in chunks, so that a server loading this keeps answering.
        track_artist = index_rows(artist_index, tracks["artist_id"])
        # Hashes of the ids over the catalogue's own Arrow strings (in chunks, so
        # that a server loading this keeps answering): no Python string per track.
        track_index = StringLookup(tracks["track_id"])
        track_label, label_ids = _label_codes(tracks)
        # Id columns read only to derive rows and codes from are not kept when the
        # caller chose its columns: a server's takedowns use track_artist and
        # track_label (31 MB of strings fewer on the 1M-track benchmark artifact).
        if catalogue_columns is not None:
            derived = [c for c in ("artist_id", "label_id") if c not in catalogue_columns]
            tracks = tracks.drop(columns=[c for c in derived if c in tracks.columns])
        problems = []
        if (item_track < 0).any():
            problems.append("model items without a catalogue track")
        if len(user_factors) != len(user_ids) or seen.shape != (len(user_ids), len(item_factors)):
            problems.append("factor and id shapes disagree")
        if len(artist_factors) != len(artists):
            problems.append("artist vectors and artists disagree")
        if not tracks["in_pool"].to_numpy()[item_track[item_track >= 0]].all():
            problems.append("a model item outside the trusted pool")
        if user_index.ntotal != len(item_factors) or item_index.ntotal != len(item_factors):
            problems.append("index sizes disagree with the item factors")
        if problems:
            raise ArtifactError(f"{path}: inconsistent artifact: {'; '.join(problems)}")

        art = cls(
            path=path,
            manifest=manifest,
            tracks=tracks,
            artists=artists,
            labels=labels,
            artist_tags=artist_tags,
            editorial_seeds=seeds,
            editorial_rejections=rejections,
            user_ids=user_ids,
            user_factors=user_factors,
            item_factors=item_factors,
            artist_factors=artist_factors,
            item_track=item_track,
            item_artist=track_artist[item_track],
            track_artist=track_artist,
            seen=seen,
            track_label=track_label,
            label_ids=label_ids,
            user_index=user_index,
            item_index=item_index,
            graph=graph,
            _user_rows={u: i for i, u in enumerate(user_ids)},
            _track_rows=track_index,
            _artist_rows=artist_index,
            _item_unit=item_unit,
            user_answers=user_answers,
            artist_answers=artist_answers,
        )
        logger.info(
            "loaded artifact %s (%d users, %d items, pool %d, indexes %s) in %.2fs",
            art.version,
            len(user_ids),
            len(item_factors),
            art.pool_size,
            "mapped" if user_index.mapped else "in memory",
            time.perf_counter() - t0,
        )
        return art


def _label_codes(tracks: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each track's label as a code, and the labels the codes stand for.

    Returns
    -------
    codes : ndarray, shape (n_tracks,), int32
        Index into ``labels``; -1 where the track has no label (or the
        catalogue has no ``label_id`` column).
    labels : ndarray, shape (n_labels,), object
        Distinct label ids, as strings.
    """
    if "label_id" not in tracks.columns:
        return np.full(len(tracks), -1, dtype=np.int32), np.zeros(0, dtype=object)
    # Arrow's dictionary encoding: no Python string per track, and the GIL released.
    encoded = arrow_strings(tracks["label_id"]).dictionary_encode()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
    return codes, np.asarray(encoded.dictionary.to_pylist(), dtype=object)


def _binary(seen: sp.csr_matrix) -> sp.csr_matrix:
    """``seen`` with boolean values: which items each user streamed is all it says.

    The file holds float32 ones; as booleans they take a quarter of the space
    (17 MB less on the 1M-track benchmark artifact, 4.3M pairs).
    """
    if seen.nnz and not np.all(seen.data == 1):
        raise ValueError("seen.npz holds values other than 1")
    return sp.csr_matrix(
        (np.ones(seen.nnz, dtype=bool), seen.indices, seen.indptr), shape=seen.shape
    )


def _stored_answers(path: Path, n_queries: int, n_items: int) -> StoredAnswers | None:
    """The answers stored at ``path``, checked; ``None`` when the artifact has none."""
    if not path.is_file():
        return None
    return StoredAnswers.load(path, n_queries=n_queries, n_ids=n_items)


def _row(index: pd.Index, key: str) -> int:
    """Position of ``key`` in a unique index, -1 when absent."""
    try:
        row = index.get_loc(key)
    except (KeyError, TypeError):
        return -1
    if isinstance(row, int | np.integer):
        return int(row)
    return int(index.get_indexer(np.asarray([key], dtype=object))[0])  # not unique: as before


#: Rows compared at once when checking that an index holds the saved item factors.
_COMPARE_ROWS = 1 << 16


#: Rows per block of :attr:`Artifact.gram` (16 MB of float64 at 64 factors).
_GRAM_ROWS = 32_768


def _held_once(saved: Path, index: VectorIndex) -> np.ndarray:
    """The item factors, held once in memory.

    Parameters
    ----------
    saved
        ``model/item_factors.npy``: shape (n_items, d).
    index
        The user index (inner product over the item factors).

    Returns
    -------
    ndarray
        The index's zero-copy storage when it holds exactly the saved factors
        (bit for bit), or the saved factors rounded to float16 when the index
        stores float16 (``RetrievalConfig.hnsw_storage``): the engine then works
        with the vectors its searches score. Otherwise the saved factors read
        into memory.

    Notes
    -----
    The file is compared in blocks read into one reused buffer, not through a
    memory map: every page of a map read once stays in the process's resident
    memory until the map is closed, which added the whole file (256 MB for a
    1M-item, 64-factor float32 model) to the peak of a reload, on top of the
    artifact being replaced.
    """
    held = index.vectors if index.metric == "ip" else None
    with open(saved, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(f)
        comparable = (
            held is not None
            and held.shape == shape
            and len(shape) == 2
            and not fortran
            and held.dtype in (dtype, np.float16)
        )
        if comparable and _holds_file(held, f, dtype):
            return held
    return np.load(saved)


def _holds_file(held: np.ndarray, f: BinaryIO, dtype: np.dtype) -> bool:
    """``held`` is the C-ordered array of ``dtype`` that ``f`` holds from its position on."""
    n, d = held.shape
    block = np.empty((min(_COMPARE_ROWS, n), d), dtype=dtype)
    for i in range(0, n, _COMPARE_ROWS):
        part = block[: min(_COMPARE_ROWS, n - i)]
        if f.readinto(memoryview(part).cast("B")) != part.nbytes:
            return False  # a short file: np.load then says what is wrong
        if not _holds(held[i : i + len(part)], part):
            return False
    return True


def _holds(held: np.ndarray, saved: np.ndarray) -> bool:
    """``held`` is ``saved``: bit for bit, or ``saved`` in float16 to within one unit.

    faiss's float16 encoding rounds a few values (about 0.006 % of them, measured) to
    the neighbouring half float of numpy's, so the float16 comparison allows one unit
    in the last place: bit patterns one apart, of the same sign.
    """
    if held.dtype == saved.dtype:
        return bool(np.array_equal(held, saved))
    ref = np.asarray(saved).astype(np.float16)
    # Compare the bit patterns (one pass); only the few that differ are looked at.
    # Neighbouring half floats of one sign differ by one in their 16-bit pattern.
    differ = np.flatnonzero(held.view(np.int16) != ref.view(np.int16))
    if differ.size == 0:
        return True
    a = held.reshape(-1).view(np.int16)[differ].astype(np.int32)
    b = ref.reshape(-1).view(np.int16)[differ].astype(np.int32)
    return bool(np.all(np.abs(a - b) <= 1) and np.all((a < 0) == (b < 0)))
