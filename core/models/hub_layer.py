"""TF Hub image feature-vector models as a Keras 3 layer.

`hub.KerasLayer` is a Keras 2 layer and cannot join a Keras 3 model (tensorflow/tensorflow#65419). Instead,
`HubFeatureLayer` calls `hub.load(handle)` and wraps each of the module's own `tf.Variable`s in a
`keras.Variable` (a wrapper, not a copy), so Keras trains, freezes, saves and loads them like its own weights.
The layer is registered as serializable and stores the handle and the module's content hash in its config.

A model file never chooses which SavedModel runs (models are programs: loading one runs its graph). Keras'
safe_mode cannot see through this layer, so it pins itself: the layer made for training hashes the module's
files (`module_digest`); saving a run copies them into the run folder, `<run>/hub_modules/<sha256>/`
(`pin_hub_modules`); and a layer restored from a model file (`from_config`) loads nothing but that copy, only
inside `pinned_hub_modules(<run>/hub_modules, <the run's backbone handles>)`, only when the copy still has the
recorded hash, and never from the handle written in the file (never a URL: loading a stored model is offline).
A model file without a hash, naming another backbone than its run's, naming a hash its run does not hold, or
loaded outside a run, is refused with a one-line ModelError.

A handle is an http(s) URL (downloaded and cached by tensorflow_hub, so it needs internet the first time) or a
local folder holding a TF2 SavedModel in TF Hub format: a callable root `__call__(images, training)` taking float
images [batch, H, W, 3] with values in [0, 1] and returning float features [batch, D], plus `variables` and
`trainable_variables` lists. Every problem with a handle is a one-line ModelError.

Training: `training` reaches the module only while the layer is trainable (a frozen layer always runs in
inference mode, like `hub.KerasLayer`), and never with `module_training=False` (what transferlab's backbones
use, so BatchNorm stays in inference mode while fine-tuning). `unfreeze=N` leaves only the variables of the
module's last N *blocks* trainable; blocks are inferred from variable names (see `block_keys`). When no blocks
can be inferred, any `unfreeze` makes all trainable variables trainable.

`write_tiny_hub_model()` writes a small TF Hub-format SavedModel for tests and demos.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from transferlab.core.errors import ModelError

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE = 224
# "block3b_expand_conv/kernel", "efficientnet-b0/blocks_15/conv2d/kernel", "MobilenetV2/expanded_conv_16/…"
_BLOCK_PATTERN = re.compile(r"(?:^|/)(?:block|blocks|expanded_conv|layer|stage)[_-]?(\d+)([a-z]?)(?=[_/]|$)")
_EXPANDED_CONV_0 = re.compile(r"(?:^|/)expanded_conv(?=/)")
_SHA256 = re.compile(r"[0-9a-f]{64}")
PINNED_FOLDER = "hub_modules"  # in a run folder: one <sha256>/ copy of each TF Hub module its model uses
# While a run's model loads: the folder of its pinned modules, and the handles it was trained with (None: any).
_pinned: contextvars.ContextVar[tuple[Path, frozenset[str] | None] | None] = contextvars.ContextVar(
    "pinned_hub_modules", default=None)


def is_url(handle: str) -> bool:
    return handle.startswith(("https://", "http://"))


def load_hub_module(handle: str) -> Any:
    """`hub.load` of a handle's local folder (a URL is downloaded first), with one-line ModelErrors."""
    return _load_folder(local_module_folder(handle), handle)


def local_module_folder(handle: str) -> Path:
    """The local SavedModel folder of a handle: the folder itself, or TF Hub's download cache for a URL (which
    is downloaded now if it is not cached yet). ModelError for a missing folder or a failed download."""
    import tensorflow_hub as hub  # ~0.3 s, only needed here

    if not isinstance(handle, str) or not handle:
        raise ModelError(f"expected a TF Hub handle (an https URL or a SavedModel folder), got {handle!r}")
    if is_url(handle):
        try:
            folder = Path(hub.resolve(handle))
        except (OSError, ValueError, RuntimeError, tf.errors.OpError) as exc:
            raise ModelError(f"expected to download TF Hub model {handle}, got {_reason(exc)} (offline? download "
                             "it once with internet and pass its local SavedModel folder instead)") from exc
        if not folder.is_dir():
            raise ModelError(f"expected TF Hub to give a local folder for {handle}, got {folder}")
        return folder
    folder = Path(handle).expanduser()
    if not folder.exists():
        raise ModelError(f"expected a TF Hub handle (an https URL or a SavedModel folder), got {handle!r}, "
                         "which does not exist")
    if not folder.is_dir() or not any((folder / n).is_file() for n in ("saved_model.pb", "saved_model.pbtxt")):
        raise ModelError(f"expected a TF2 SavedModel folder (with saved_model.pb), got {handle!r}")
    return folder


def _load_folder(folder: Path, handle: str) -> Any:
    import tensorflow_hub as hub

    try:
        return hub.load(str(folder))
    except (OSError, ValueError, tf.errors.OpError) as exc:
        raise ModelError(f"expected a loadable TF2 SavedModel in {folder} ({handle}), got {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]


# ---- pinning: a stored model loads only the module it was trained with ----

def module_digest(folder: str | os.PathLike[str]) -> str:
    """sha256 of a SavedModel folder: over its files' relative POSIX paths (sorted) and each file's sha256.

    Only plain files and folders are read: a link to a folder, a FIFO or a device inside is a ModelError."""
    root = Path(folder)
    total = hashlib.sha256()
    for relative in _module_files(root):
        name = relative.encode("utf-8", "surrogateescape")
        total.update(len(name).to_bytes(8, "little") + name + _file_sha256(root / relative))
    return total.hexdigest()


def _module_files(root: Path) -> list[str]:
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        for name in dirs:
            if (base / name).is_symlink():
                raise ModelError(f"expected a SavedModel folder of plain files and folders at {root}, got a link "
                                 f"{base / name}")
        for name in files:
            if not stat.S_ISREG(os.stat(base / name).st_mode):
                raise ModelError(f"expected a SavedModel folder of plain files at {root}, got {base / name}, "
                                 "which is not a regular file")
            found.append((base / name).relative_to(root).as_posix())
    return sorted(found)


def _file_sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


@contextlib.contextmanager
def pinned_hub_modules(folder: str | os.PathLike[str], handles: Iterable[str] | None = None) -> Iterator[None]:
    """While active, TF Hub layers restored from a model file load only `folder/<their sha256>/`; with
    `handles` (the backbones the run was trained with), a layer naming any other handle is refused."""
    token = _pinned.set((Path(folder), None if handles is None else frozenset(handles)))
    try:
        yield
    finally:
        _pinned.reset(token)


def pinned_module_folder(digest: str, handle: str) -> Path:
    """The pinned copy of the module with this sha256, checked; ModelError when the model file names another
    backbone than its run's, or the copy is not there or has changed."""
    pinned = _pinned.get()
    if pinned is None:
        raise ModelError(f"expected to load TF Hub backbone {handle!r:.200} from the copy stored with its run, got a "
                         "model loaded outside a run (refused: a model file cannot choose which SavedModel runs)")
    root, handles = pinned
    if handles is not None and handle not in handles:
        trained = ", ".join(sorted(handles)) or "none: it has no TF Hub backbone"
        raise ModelError(f"expected the TF Hub backbone the run was trained with ({trained}), got a model file "
                         f"naming {handle!r:.200} (refused: a stored model loads only its own backbone)")
    folder = root / digest
    if not _SHA256.fullmatch(digest) or not folder.is_dir():
        raise ModelError(f"expected the TF Hub backbone the run was trained with (in {root}), got a model file "
                         f"naming {handle!r:.200} (sha256 {digest[:16]}…), which the run does not hold (refused: a "
                         "stored model loads only its own backbone)")
    actual = module_digest(folder)
    if actual != digest:
        raise ModelError(f"expected the run's copy of its TF Hub backbone in {folder} to have sha256 "
                         f"{digest[:16]}…, got {actual[:16]}… (it was changed after training; refused)")
    return folder


def hub_layers(model: Any) -> list[HubFeatureLayer]:
    """Every HubFeatureLayer in a model, nested models included."""
    found: list[HubFeatureLayer] = []
    for layer in getattr(model, "layers", ()):
        if isinstance(layer, HubFeatureLayer):
            found.append(layer)
        elif layer is not model:
            found.extend(hub_layers(layer))
    return found


def pin_hub_modules(model: Any, folder: str | os.PathLike[str]) -> list[Path]:
    """Copy the module of every TF Hub layer of `model` into `folder/<sha256>/` (the hash the layer recorded
    when it loaded the module; a copy that does not match it is refused). Returns the pinned folders."""
    pinned: list[Path] = []
    for layer in hub_layers(model):
        target = Path(folder) / layer.module_sha256
        if not target.is_dir():
            _copy_module(layer.module_dir, target, layer.module_sha256)
        elif module_digest(target) != layer.module_sha256:
            raise ModelError(f"expected the pinned TF Hub backbone in {target} to have sha256 "
                             f"{layer.module_sha256[:16]}…, got different files")
        pinned.append(target)
    return pinned


def _copy_module(source: Path, target: Path, digest: str) -> None:
    """Copy a module folder to a temporary sibling of `target`, check its hash, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name[:16]}.", suffix=".tmp", dir=target.parent))
    try:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        if module_digest(tmp) != digest:
            raise ModelError(f"expected the TF Hub backbone in {source} to be unchanged since it was loaded "
                             f"(sha256 {digest[:16]}…), got different files")
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelError(f"expected to copy the TF Hub backbone {source} into {target}, got {_reason(exc)}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("pinned TF Hub module %s as %s", source, target)


def module_image_size(module: Any) -> tuple[int, int] | None:
    """The fixed (H, W) the module's traced `__call__` signatures declare, or None when they leave it open."""
    function = getattr(module, "__call__", None)  # noqa: B004 - the restored tf.function, not callability
    for concrete in getattr(function, "concrete_functions", ()) or ():
        args, _ = concrete.structured_input_signature
        spec = args[0] if args else None
        shape = getattr(spec, "shape", None)
        if shape is not None and shape.rank == 4 and shape[1] is not None and shape[2] is not None:
            return int(shape[1]), int(shape[2])
    return None


def check_feature_module(module: Any, handle: str) -> tuple[tuple[int, int], int]:
    """Run the module once on a blank batch: returns ((H, W), feature_dim) or raises ModelError."""
    if not callable(module) or not hasattr(module, "variables"):
        raise ModelError(f"expected a TF Hub-format SavedModel (callable, with variables) at {handle}, "
                         f"got a {type(module).__name__} without {'__call__' if not callable(module) else 'variables'}")
    size = module_image_size(module) or (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    try:
        output = module(tf.zeros((2, *size, 3), tf.float32), training=False)
    except (TypeError, ValueError, tf.errors.OpError) as exc:
        raise ModelError(f"expected a feature-vector model taking float [batch, {size[0]}, {size[1]}, 3] images "
                         f"at {handle}, got {type(exc).__name__}: {str(exc).splitlines()[0][:160]}") from exc
    shape = tuple(getattr(output, "shape", ()))
    dtype = getattr(output, "dtype", None)
    if not (isinstance(output, tf.Tensor) and len(shape) == 2 and shape[0] == 2 and dtype is not None
            and dtype.is_floating):
        got = f"{type(output).__name__} {list(shape)} {getattr(dtype, 'name', '')}".strip()
        raise ModelError(f"expected a feature-vector model returning float [batch, features] at {handle}, "
                         f"got {got}")
    return size, int(shape[1])


def block_keys(names: Sequence[str]) -> list[tuple[int, str] | None]:
    """The block each variable belongs to, as a sortable key, from its name; None for stem/head variables.

    Recognised: `block3b_…` (Keras EfficientNet, this project's export), `blocks_15/…` (TF EfficientNet),
    `expanded_conv_16/…` (MobileNet V2), `layer2/…`, `stage3/…`.
    """
    keys: list[tuple[int, str] | None] = []
    for name in names:
        match = _BLOCK_PATTERN.search(name)
        if match:
            keys.append((int(match.group(1)), match.group(2)))
        elif _EXPANDED_CONV_0.search(name):
            keys.append((0, ""))
        else:
            keys.append(None)
    return keys


def variable_blocks(names: Sequence[str]) -> list[int | None]:
    """Block number (0-based, network order) of each variable, or None for the stem (never unfrozen by
    number). Variables without a block key that come after the last block variable in the module's own order
    form one extra last block, the head. Empty result semantics: all None means no blocks were found."""
    keys = block_keys(names)
    found = sorted({key for key in keys if key is not None})
    if not found:
        return [None] * len(names)
    last_block_position = max(i for i, key in enumerate(keys) if key is not None)
    order = {key: i for i, key in enumerate(found)}
    return [order[key] if key is not None else (len(found) if i > last_block_position else None)
            for i, key in enumerate(keys)]


@keras.saving.register_keras_serializable(package="transferlab")
class HubFeatureLayer(keras.layers.Layer):
    """A TF Hub image feature-vector model: float [batch, H, W, 3] in [0, 1] → [batch, feature_dim]."""

    def __init__(self, handle: str, trainable: bool = False, unfreeze: int | str | None = None,
                 module_training: bool = True, module_sha256: str | None = None, **kwargs: Any) -> None:
        """A new layer loads `handle` (a URL is downloaded) and records the module's sha256; with
        `module_sha256` (a layer restored from a model file) only the pinned copy with that hash is loaded and
        `handle` is just a name."""
        super().__init__(trainable=trainable, **kwargs)
        self.handle = str(handle)
        # False: the module always runs in inference mode (BatchNorm statistics fixed, no dropout), even while
        # its weights are fine-tuned — the Keras transfer-learning recipe.
        self.module_training = bool(module_training)
        if module_sha256 is None:
            self.module_dir = local_module_folder(self.handle)
            self.module_sha256 = module_digest(self.module_dir)
        else:
            self.module_dir = pinned_module_folder(str(module_sha256), self.handle)
            self.module_sha256 = str(module_sha256)
        module = _load_folder(self.module_dir, self.handle)
        self.image_size, self.feature_dim = check_feature_module(module, self.handle)
        self._module = module
        module_trainable = {id(v) for v in getattr(module, "trainable_variables", ())}
        self.variable_names = [v.name.split(":")[0] for v in module.variables]
        self.variable_blocks = variable_blocks(self.variable_names)
        self.blocks = 0 if all(b is None for b in self.variable_blocks) else max(
            b for b in self.variable_blocks if b is not None) + 1
        self._module_trainable = [id(v) in module_trainable for v in module.variables]
        # Wrapped, not copied: the module's forward pass reads exactly these variables.
        self.hub_variables = [keras.Variable(v, trainable=is_trainable, name=_keras_name(v.name))
                              for v, is_trainable in zip(module.variables, self._module_trainable, strict=True)]
        self.unfreeze = unfreeze
        self._apply_trainable()
        self.built = True
        logger.info("loaded TF Hub model %s: %d variables, %d blocks, input %s, %d features", self.handle,
                    len(self.hub_variables), self.blocks, self.image_size, self.feature_dim)

    @property
    def trainable(self) -> bool:
        return bool(self._trainable)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        keras.layers.Layer.trainable.fset(self, value)
        self._apply_trainable()

    def set_unfreeze(self, unfreeze: int | str | None) -> None:
        """Which trainable variables train while the layer is trainable: None/"all" = all of them, N = those of
        the last N blocks (all of them when the module has no recognisable blocks), 0 = none."""
        if not (unfreeze is None or unfreeze == "all" or (isinstance(unfreeze, int) and unfreeze >= 0)):
            raise ModelError(f"expected unfreeze to be an integer >= 0 or 'all', got {unfreeze!r}")
        self.unfreeze = unfreeze
        self._apply_trainable()

    def _apply_trainable(self) -> None:
        # Set every variable explicitly: assigning layer.trainable its current value does not reach them.
        if not hasattr(self, "hub_variables"):
            return
        unfreeze = self.unfreeze
        for variable, module_trainable, block in zip(self.hub_variables, self._module_trainable,
                                                     self.variable_blocks, strict=True):
            selected = (unfreeze is None or unfreeze == "all" or self.blocks == 0
                        or (isinstance(unfreeze, int) and block is not None and block >= self.blocks - unfreeze))
            variable.trainable = bool(self._trainable and module_trainable and selected)

    def call(self, images: Any, training: Any = None) -> Any:
        return self._module(images, training=bool(training) and self._trainable and self.module_training)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, int]:
        return (input_shape[0], self.feature_dim)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "handle": self.handle, "unfreeze": self.unfreeze,
                "module_training": self.module_training, "module_sha256": self.module_sha256}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HubFeatureLayer:
        """A layer from a model file: only ever the run's pinned copy of the module (see the module docstring)."""
        digest = config.get("module_sha256")
        if not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
            got = "none" if digest is None else f"{digest!r:.80}"
            raise ModelError(f"expected a TF Hub layer pinned to its backbone by a sha256, got handle "
                             f"{config.get('handle')!r:.200} with sha256 {got} (refused: a model file cannot choose "
                             "which SavedModel runs; a run saved before backbones were pinned must be trained again)")
        layer: HubFeatureLayer = super().from_config(config)  # Keras is untyped: Layer.from_config is Any
        return layer


def _keras_name(tf_name: str) -> str:
    return tf_name.split(":")[0].replace("/", "_") or "variable"


# ---- a tiny TF Hub-format model, for tests and demos ----

def write_tiny_hub_model(path: str | os.PathLike[str], feature_dim: int = 8, image_size: int = 32,
                         seed: int = 0) -> Path:
    """Write a small TF Hub-format image feature-vector SavedModel to `path` (a new folder) and return it.

    Input float [batch, image_size, image_size, 3] in [0, 1]; output float [batch, feature_dim]. Variables
    (named like a real backbone: `stem/…`, `block1/…`, `block2/…`, `head/…`) include a non-trainable
    `block2/moving_mean` that only changes when called with training=True, like BatchNorm statistics.
    Saving takes ~1 s.
    """
    rng = np.random.default_rng(seed)

    def weight(name: str, shape: tuple[int, ...], trainable: bool = True) -> tf.Variable:
        scale = 1.0 / np.sqrt(np.prod(shape[:-1]))
        return tf.Variable(rng.normal(0, scale, shape).astype(np.float32), trainable=trainable, name=name)

    stem = weight("stem/kernel", (3, 3, 3, 8))
    block1 = weight("block1/kernel", (3, 3, 8, 8))
    block2 = weight("block2/kernel", (3, 3, 8, 16))
    block2_bias = tf.Variable(tf.zeros(16), name="block2/bias")
    moving_mean = tf.Variable(tf.zeros(16), trainable=False, name="block2/moving_mean")
    head = weight("head/kernel", (16, feature_dim))
    variables = [stem, block1, block2, block2_bias, moving_mean, head]

    @tf.function
    def forward(images: tf.Tensor, training: bool = False) -> tf.Tensor:
        x = tf.nn.relu(tf.nn.conv2d(images * 2.0 - 1.0, stem, 2, "SAME"))
        x = tf.nn.relu(tf.nn.conv2d(x, block1, 1, "SAME")) + x
        x = tf.nn.conv2d(x, block2, 2, "SAME") + block2_bias
        if training:
            moving_mean.assign(0.9 * moving_mean + 0.1 * tf.reduce_mean(x, axis=(0, 1, 2)))
        x = tf.nn.relu(x - moving_mean)
        return tf.matmul(tf.reduce_mean(x, axis=(1, 2)), head)

    spec = tf.TensorSpec([None, image_size, image_size, 3], tf.float32)
    root = tf.train.Checkpoint()
    root.variables = variables
    root.trainable_variables = [v for v in variables if v.trainable]
    root.regularization_losses = []
    root.__call__ = forward
    for training in (True, False):
        forward.get_concrete_function(spec, training)
    path = Path(path)
    tf.saved_model.save(root, str(path))
    return path
