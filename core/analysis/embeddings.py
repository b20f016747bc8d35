"""A backbone's feature vector for each image file, cached on disk by backbone and file content.

    store = EmbeddingCache.for_backbone(spec)          # under $TRANSFERLAB_CACHE_DIR or the user cache dir
    vectors = embed_files(root, paths, spec, progress)  # float32 [n, feature_dim]; only new files are computed

The key of a file is the BLAKE2b hash of its bytes, so a moved or renamed file is found again and a file
changed in place is computed again. The key of a backbone is its spec plus, for a local SavedModel folder,
the size and modification time of its files (a model replaced in place is a new backbone). The vectors are
exactly what a frozen run computes: the same decoding (core.data.folders.make_dataset) and the same
extractor (core.models.transfer.inference_function), in batches of EXTRACT_BATCH.

One cache file per backbone (an .npz of hashes and vectors, written atomically); a damaged file is ignored
(logged) and rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from transferlab.core.atomic import write_bytes_atomic
from transferlab.core.data.folders import content_hash
from transferlab.core.errors import TransferlabError

logger = logging.getLogger(__name__)

CACHE_ENV = "TRANSFERLAB_CACHE_DIR"
Progress = Callable[[int, int], None]


def cache_root() -> Path:
    """$TRANSFERLAB_CACHE_DIR, else the user cache dir (platformdirs), + /embeddings."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("transferlab")
    return Path(root) / "embeddings"


def backbone_key(spec: str) -> str:
    """A file-name-safe key for a backbone spec (local folders: also their files' sizes and times)."""
    text = spec.strip()
    folder = Path(text).expanduser()
    if folder.is_dir():
        stats = sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                       for p in folder.rglob("*") if p.is_file())
        text = f"{folder.resolve()}|{stats}"
    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(spec.strip()).name)[:40]
    return f"{readable}-{hashlib.blake2b(text.encode(), digest_size=8).hexdigest()}"


class EmbeddingCache:
    """Vectors of one backbone by file content hash, in one .npz file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.vectors: dict[str, np.ndarray] = {}
        self._dirty = False
        self._load()

    @classmethod
    def for_backbone(cls, spec: str) -> EmbeddingCache:
        return cls(cache_root() / f"{backbone_key(spec)}.npz")

    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            with np.load(self.path, allow_pickle=False) as data:
                hashes, vectors = data["hashes"], data["vectors"]
            if len(hashes) != len(vectors) or vectors.ndim != 2:
                raise ValueError(f"{len(hashes)} hashes for {vectors.shape} vectors")
            self.vectors = {str(h): vectors[i] for i, h in enumerate(hashes)}
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("ignoring a damaged embeddings cache %s: %s", self.path, exc)
            self.vectors = {}

    def get(self, key: str) -> np.ndarray | None:
        return self.vectors.get(key)

    def put(self, key: str, vector: np.ndarray) -> None:
        self.vectors[key] = np.asarray(vector, dtype=np.float32)
        self._dirty = True

    def save(self) -> None:
        if not self._dirty or not self.vectors:
            return
        keys = sorted(self.vectors)
        buffer = io.BytesIO()
        np.savez(buffer, hashes=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]))
        try:
            write_bytes_atomic(self.path, buffer.getvalue())
            self._dirty = False
        except TransferlabError as exc:  # a cache that cannot be written only costs time next run
            logger.warning("could not write the embeddings cache: %s", exc)


def embed_files(root: str | os.PathLike[str], paths: Sequence[str], spec: str,
                progress: Progress | None = None, *, use_cache: bool = True,
                keys: Sequence[str] | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """Feature vectors of root/path for each path (float32 [n, d]) and {"cached": k, "computed": m}.
    `keys`: the files' content hashes when already known.

    Every path must be a readable image (scan the folder first); ImageError/DataError otherwise."""
    from transferlab.core.models.backbones import resolve_backbone
    from transferlab.core.models.building import building_models
    from transferlab.core.models.transfer import EXTRACT_BATCH, inference_function, run_once

    cache = EmbeddingCache.for_backbone(spec) if use_cache else EmbeddingCache(Path(os.devnull) / "none")
    keys = list(keys) if keys is not None else [content_hash(os.path.join(root, p)) for p in paths]
    missing = [i for i, key in enumerate(keys) if cache.get(key) is None]
    total_batches = -(-len(missing) // EXTRACT_BATCH)
    if missing:
        with building_models():  # Keras builds through process-wide state: one build at a time (GUI tasks)
            backbone = resolve_backbone(spec)
            size = (int(backbone.info.input_size[0]), int(backbone.info.input_size[1]))
            forward = inference_function(backbone.build_extractor())
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total_batches)

        if progress is not None:
            progress(0, total_batches)
        vectors, _ = run_once(forward, str(root), [(paths[i], 0) for i in missing], size, tick)
        for i, vector in zip(missing, vectors, strict=True):
            cache.put(keys[i], vector)
        if use_cache:
            cache.save()
    stacked = np.stack([cache.vectors[key] for key in keys]) if keys else np.zeros((0, 0), np.float32)
    return stacked.astype(np.float32, copy=False), {"cached": len(keys) - len(missing), "computed": len(missing)}


def cached_features(root: str | os.PathLike[str], paths: Sequence[str], spec: str) -> dict[str, np.ndarray] | None:
    """{path: vector} when the cache holds every file's vector for this backbone, else None (never computes)."""
    path = EmbeddingCache.for_backbone(spec).path
    if not path.is_file() or not paths:
        return None
    cache = EmbeddingCache(path)
    found = {}
    for relative in dict.fromkeys(paths):
        try:
            vector = cache.get(content_hash(os.path.join(root, relative)))
        except OSError:
            return None
        if vector is None:
            return None
        found[relative] = vector
    return found
