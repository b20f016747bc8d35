"""Where transferlab keeps files it can rebuild: the cache folder (converted backbones, embeddings, activations)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "TRANSFERLAB_CACHE_DIR"


def cache_dir() -> Path:
    """$TRANSFERLAB_CACHE_DIR, else the user's cache folder (platformdirs)."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("transferlab")
    return Path(root)
