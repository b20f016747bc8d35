"""Settings for the whole suite: headless Qt, quiet TensorFlow, runs and caches in temporary folders."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Never touch the user's real run store or cache; one cache for the session keeps the backbone build cheap.
_session_dir = tempfile.mkdtemp(prefix="transferlab-tests-")
os.environ["TRANSFERLAB_HOME"] = os.path.join(_session_dir, "home")
os.environ["TRANSFERLAB_CACHE_DIR"] = os.path.join(_session_dir, "cache")
