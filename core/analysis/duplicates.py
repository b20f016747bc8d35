"""Near-duplicate images: a perceptual hash per image (imagehash's pHash, robust to resizing and re-encoding)
and, when embeddings are given, their cosine similarity; linked pairs are joined into groups.

    hashes = perceptual_hashes(root, paths)                 # uint64 per image (0 for an unreadable one)
    groups = near_duplicate_groups(hashes, embeddings)      # [NearDuplicateGroup(members, similarity, ...)]

Two images are near-duplicates when their pHashes differ in at most HASH_MAX_BITS of 64 bits AND (when
embeddings are given) the backbone sees them alike (cosine ≥ COSINE_MIN): the hash alone links flat or
low-texture images by accident, the embedding alone links distinct photos of one subject. Measured on real
photos with EfficientNet-Lite0: resized (80 %) and re-encoded (JPEG q70) copies had cosine 0.86–0.98 to their
originals, distinct photos at most 0.83; copies' pHashes differ in 0–6 bits, unrelated photos in ~32.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transferlab.core.analysis.embeddings import EmbeddingCache, cache_root
from transferlab.core.data.folders import content_hash
from transferlab.core.data.images import load_rgb
from transferlab.core.errors import ImageError

logger = logging.getLogger(__name__)

HASH_MAX_BITS = 10  # of 64: pHash distance for a near-duplicate
HASH_ONLY_MAX_BITS = 4  # without embeddings (a training split's groups) the hash must be stricter
COSINE_MIN = 0.85
HASH_SIZE = (64, 64)  # pixels decoded for hashing (pHash works on 32×32 grey)


@dataclass(frozen=True)
class NearDuplicateGroup:
    """Indices of images linked by near-duplicate pairs; `similarity` is the weakest link's cosine (1.0 for
    identical hashes without embeddings) and `hash_bits` the largest pHash distance of a link."""

    members: tuple[int, ...]
    similarity: float
    hash_bits: int


def perceptual_hash(path: str | os.PathLike[str]) -> int:
    """The 64-bit pHash of one image file (decoded by core.images: same formats and checks as training)."""
    import imagehash
    from PIL import Image

    pixels = load_rgb(path, HASH_SIZE, min_size=1)
    bits = imagehash.phash(Image.fromarray(pixels, "RGB")).hash.flatten()
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


def perceptual_hashes(root: str | os.PathLike[str], paths: Sequence[str],
                      progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """uint64 pHash of each root/path; an unreadable file gets 0 and never links to anything."""
    hashes = np.zeros(len(paths), dtype=np.uint64)
    for done, path in enumerate(paths, start=1):
        try:
            hashes[done - 1] = perceptual_hash(os.path.join(root, path))
        except ImageError as exc:
            logger.debug("no hash for %s: %s", path, exc)
        if progress is not None:
            progress(done, len(paths))
    return hashes


PAIR_BLOCK = 1024  # rows compared at once: memory O(PAIR_BLOCK × n), never the full n × n matrices


def hash_distances(hashes: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
    """[len(hashes), len(others)] number of differing bits between every two hashes (others: hashes itself)."""
    others = hashes if others is None else others
    xor = np.bitwise_xor(hashes[:, None], others[None, :])
    distances: np.ndarray = np.bitwise_count(xor).astype(np.int16)
    return distances


def unit_vectors(embeddings: np.ndarray) -> np.ndarray:
    vectors = np.asarray(embeddings, dtype=np.float32)
    unit: np.ndarray = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return unit


def linked_pairs(hashes: np.ndarray, unit: np.ndarray | None, hash_max_bits: int, cosine_min: float,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every near-duplicate pair (i, j), i < j, with its cosine and pHash distance, compared PAIR_BLOCK rows at
    a time: at 10,000 images the whole matrices (xor, bit counts, cosines, masks) took over 1.5 GB."""
    n = len(hashes)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    readable = hashes != 0
    for start in range(0, n, PAIR_BLOCK):
        stop = min(n, start + PAIR_BLOCK)
        bits = hash_distances(hashes[start:stop], hashes)
        linked = (bits <= hash_max_bits) & readable[start:stop, None] & readable[None, :]
        cosines = unit[start:stop] @ unit.T if unit is not None else None
        if cosines is not None:
            linked &= cosines >= cosine_min
        block_rows, cols = np.nonzero(linked)
        upper = cols > block_rows + start  # each pair once, never an image with itself
        block_rows, cols = block_rows[upper], cols[upper]
        similarity = (cosines[block_rows, cols] if cosines is not None
                      else np.ones(len(cols), dtype=np.float32))
        found.append((block_rows + start, cols, similarity, bits[block_rows, cols]))
    rows, cols, similarity, bits = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return rows, cols, similarity, bits


def near_duplicate_groups(hashes: np.ndarray, embeddings: np.ndarray | None = None, *,
                          hash_max_bits: int | None = None, cosine_min: float = COSINE_MIN,
                          ) -> list[NearDuplicateGroup]:
    """Groups of two or more images linked by near-duplicate pairs, largest first."""
    n = len(hashes)
    if n < 2:
        return []
    limit = hash_max_bits if hash_max_bits is not None else (
        HASH_MAX_BITS if embeddings is not None else HASH_ONLY_MAX_BITS)
    unit = unit_vectors(embeddings) if embeddings is not None else None
    rows, cols, similarity, bits = linked_pairs(hashes, unit, limit, cosine_min)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        parent[find(i)] = find(j)
    members: dict[int, list[int]] = {}
    for i in sorted(set(rows.tolist()) | set(cols.tolist())):
        members.setdefault(find(i), []).append(i)
    # each group's weakest link (lowest cosine) and widest one (most differing hash bits), pair by pair
    roots = np.fromiter((find(i) for i in rows.tolist()), dtype=np.int64, count=len(rows))
    weakest = np.full(n, np.inf)
    widest = np.zeros(n, dtype=np.int64)
    np.minimum.at(weakest, roots, similarity)
    np.maximum.at(widest, roots, bits)
    groups = [NearDuplicateGroup(tuple(group), float(weakest[root]), int(widest[root]))
              for root, group in members.items()]
    return sorted(groups, key=lambda g: (-len(g.members), -g.similarity, g.members))


def group_labels(n: int, groups: Sequence[NearDuplicateGroup]) -> np.ndarray:
    """One group id per image: near-duplicates share one, every other image has its own (for group k-fold)."""
    ids = np.arange(n, dtype=np.int64)
    for group in groups:
        ids[list(group.members)] = group.members[0]
    return ids


_HASH_CACHE = "phash-v1"


def cached_perceptual_hashes(root: str, paths: Sequence[str], progress: Callable[[int, int], None] | None = None,
                             *, use_cache: bool = True, keys: Sequence[str] | None = None) -> np.ndarray:
    """perceptual_hashes with an on-disk cache by file content (stored as four exact 16-bit floats)."""
    cache = EmbeddingCache(cache_root() / f"{_HASH_CACHE}.npz") if use_cache else None
    keys = list(keys) if keys is not None else [content_hash(Path(root) / p) for p in paths]
    hashes = np.zeros(len(paths), dtype=np.uint64)
    missing = []
    for i, key in enumerate(keys):
        vector = cache.get(key) if cache is not None else None
        if vector is None:
            missing.append(i)
        else:
            chunks = vector.astype(np.uint64)
            hashes[i] = (chunks[0] << 48) | (chunks[1] << 32) | (chunks[2] << 16) | chunks[3]
    computed = perceptual_hashes(root, [paths[i] for i in missing], progress)
    for i, value in zip(missing, computed, strict=True):
        hashes[i] = value
        if cache is not None:
            words = [(int(value) >> shift) & 0xFFFF for shift in (48, 32, 16, 0)]
            cache.put(keys[i], np.array(words, dtype=np.float32))
    if cache is not None:
        cache.save()
    return hashes


def split_groups(root: str, paths: Sequence[str],
                 progress: Callable[[int, int], None] | None = None) -> list[list[str]]:
    """Near-duplicate groups of files by perceptual hash alone (strict: HASH_ONLY_MAX_BITS), for a training
    split that keeps each group on one side; hashes come from (and go to) the on-disk cache."""
    hashes = cached_perceptual_hashes(root, paths, progress)
    return [[paths[i] for i in group.members] for group in near_duplicate_groups(hashes)]
