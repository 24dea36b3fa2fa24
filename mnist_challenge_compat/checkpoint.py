"""TF1 checkpoints of the MNIST / CIFAR-10 Challenge and DAA code <-> Keras 3 models.

Two name layouts:

- positional (MNIST Challenge, DAA): the TF1 code creates its variables with ``tf.Variable``
  (TF1 names ``Variable``, ``Variable_1``, ... in creation order: kernel then bias of every
  conv / dense layer in model order) and, for the DAA model, ``tf.layers.batch_normalization``
  (``batch_normalization/gamma``, ``beta``, ``moving_mean``, ``moving_variance``);
- scoped (CIFAR-10 Challenge, the TensorFlow ResNet code): ``tf.get_variable`` under variable
  scopes, ``<scope>/DW`` (conv / dense kernel), ``<scope>/biases`` and tf.contrib's
  ``<scope>/BatchNorm/{beta,gamma,moving_mean,moving_variance}``. A Keras model uses this
  layout when its weight layers are named after the scopes with ``.`` for ``/`` (Keras forbids
  ``/`` in names): ``unit_1_0.sub1.conv1`` -> ``unit_1_0/sub1/conv1/DW``.

``tf.train.AdamOptimizer`` adds the slots ``<var>/Adam`` (first moment), ``<var>/Adam_1``
(second moment) and the scalars ``beta1_power``, ``beta2_power``;
``tf.train.MomentumOptimizer`` the slot ``<var>/Momentum`` (the accumulator);
``global_step`` is an int64 scalar. A checkpoint is a prefix ``<dir>/checkpoint-<step>`` with
the files ``.index`` and ``.data-00000-of-00001``, and the directory's ``checkpoint`` state
file names the newest one.

This module only knows file formats and names; layer definitions live in ``models``.
"""
from __future__ import annotations

import functools
import glob
import hashlib
import os
import re
import uuid
from typing import Iterator

import keras
import numpy as np
import tensorflow as tf

import models
from mnist_challenge_compat.errors import CompatError

STATE_FILE = "checkpoint"
CHECKPOINT_BASENAME = "checkpoint"
MAX_TO_KEEP = 3
GLOBAL_STEP = "global_step"
ADAM_SLOT_SUFFIXES = ("/Adam", "/Adam_1")
MOMENTUM_SLOT_SUFFIX = "/Momentum"
SLOT_SUFFIXES = ADAM_SLOT_SUFFIXES + (MOMENTUM_SLOT_SUFFIX,)
SCOPE_SEPARATOR = "."
OPTIMIZER_SCALARS = ("beta1_power", "beta2_power")
_BN_FIELDS = ("gamma", "beta", "moving_mean", "moving_variance")

__all__ = [
    "load_model", "save_checkpoint", "restore_optimizer", "latest_checkpoint",
    "tf1_variable_map", "read_global_step", "is_model_variable_name", "tf1_layout",
    "STATE_FILE", "MAX_TO_KEEP",
]


# --------------------------------------------------------------------------- name layout

def _iter_layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    """Layers of ``model`` in model order, descending into nested models."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _iter_layers(layer)
        else:
            yield layer


def _weight_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in _iter_layers(model) if layer.weights]


def uses_scoped_names(model: keras.Model) -> bool:
    """True when a weight layer's name holds ``SCOPE_SEPARATOR``: the model then follows the
    scoped layout (see the module docstring), otherwise the positional one."""
    return any(SCOPE_SEPARATOR in layer.name for layer in _weight_layers(model))


def _check_bn(model: keras.Model, layer: keras.layers.BatchNormalization) -> None:
    if layer.gamma is None or layer.beta is None:
        raise CompatError(f"model {model.name}: layer {layer.name} lacks gamma/beta; "
                          "the TF1 layout needs center=True, scale=True")


def _scoped_variable_map(model: keras.Model) -> dict[str, keras.Variable]:
    """The scoped layout: the layer name (``.`` -> ``/``) is the scope of its variables."""
    names: dict[str, keras.Variable] = {}
    for layer in _weight_layers(model):
        scope = layer.name.replace(SCOPE_SEPARATOR, "/")
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            names[f"{scope}/DW"] = layer.kernel
            if layer.bias is not None:
                names[f"{scope}/biases"] = layer.bias
        elif isinstance(layer, keras.layers.BatchNormalization):
            _check_bn(model, layer)
            for field in _BN_FIELDS:
                names[f"{scope}/{field}"] = getattr(layer, field)
        else:
            raise CompatError(f"model {model.name}: layer {layer.name} "
                              f"({type(layer).__name__}) has weights with no TF1 name")
    return names


def tf1_variable_map(model: keras.Model) -> dict[str, keras.Variable]:
    """TF1 variable name -> the model's variable, in TF1 creation order.

    Positional layout: Conv2D / Dense layers contribute ``Variable_<n>`` (kernel) and
    ``Variable_<n+1>`` (bias), numbered from 0 (``Variable``) across the model; the k-th
    batch-normalization layer contributes
    ``batch_normalization[_k]/{gamma,beta,moving_mean,moving_variance}``.
    Scoped layout (a weight layer's name holds ``.``): a layer named ``a.b`` contributes
    ``a/b/DW`` and ``a/b/biases`` (conv / dense; no ``biases`` without a bias) or
    ``a/b/{gamma,beta,moving_mean,moving_variance}`` (batch normalization).
    Kernel shapes are the same in both worlds (conv HWIO, dense (in, out)).

    Raises:
        CompatError: a layer has weights with no TF1 counterpart (e.g. a bias-less conv in
        the positional layout).
    """
    if uses_scoped_names(model):
        return _scoped_variable_map(model)
    names: dict[str, keras.Variable] = {}
    n_var = 0
    n_bn = 0
    for layer in _iter_layers(model):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            if layer.bias is None:
                raise CompatError(f"model {model.name}: layer {layer.name} has no bias; "
                                  "the TF1 layout needs kernel and bias")
            for var in (layer.kernel, layer.bias):
                names["Variable" if n_var == 0 else f"Variable_{n_var}"] = var
                n_var += 1
        elif isinstance(layer, keras.layers.BatchNormalization):
            _check_bn(model, layer)
            scope = "batch_normalization" if n_bn == 0 else f"batch_normalization_{n_bn}"
            n_bn += 1
            for field in _BN_FIELDS:
                names[f"{scope}/{field}"] = getattr(layer, field)
        elif layer.weights:
            raise CompatError(f"model {model.name}: layer {layer.name} "
                              f"({type(layer).__name__}) has weights with no TF1 name")
    return names


def is_model_variable_name(name: str) -> bool:
    """True for model weights; False for optimizer slots, ``beta*_power`` and ``global_step``."""
    return not (name.endswith(SLOT_SUFFIXES) or name in OPTIMIZER_SCALARS or name == GLOBAL_STEP)


def _variable_sort_key(name: str) -> tuple:
    """Numeric order of TF1 names: ``Variable_2`` before ``Variable_10`` (unlike a string sort)."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


@functools.lru_cache(maxsize=None)
def tf1_layout(arch: str) -> dict[str, tuple[int, ...]]:
    """TF1 name -> shape of the model variables of architecture ``arch`` (a key of
    ``models.ARCHITECTURES``), built once from ``models``."""
    _check_arch(arch)
    model = models.build_model(arch, seed=0)
    return {name: tuple(int(d) for d in var.shape)
            for name, var in tf1_variable_map(model).items()}


def _check_arch(arch: str) -> None:
    if arch not in models.ARCHITECTURES:
        raise CompatError(f"unknown architecture {arch!r}; known: "
                          f"{', '.join(sorted(models.ARCHITECTURES))}")


# --------------------------------------------------------------------------- state file

def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _read_state(state_path: str) -> tuple[str, list[str]]:
    """Parses a ``checkpoint`` state file (text proto ``CheckpointState``).

    Returns ``(model_checkpoint_path, all_model_checkpoint_paths)`` as written (relative or
    absolute). Unknown fields (e.g. timestamps of newer TF versions) are ignored.
    """
    try:
        with open(state_path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise CompatError(f"{state_path}: cannot read checkpoint state file ({err})") from None
    latest = None
    everything: list[str] = []
    for match in re.finditer(r'^\s*(\w+)\s*:\s*"((?:[^"\\]|\\.)*)"\s*$', text, re.MULTILINE):
        key, value = match.group(1), _unquote(match.group(2))
        if key == "model_checkpoint_path":
            latest = value
        elif key == "all_model_checkpoint_paths":
            everything.append(value)
    if not latest:
        raise CompatError(f"{state_path}: checkpoint state file has no model_checkpoint_path")
    return latest, everything


def _write_state(model_dir: str, latest: str, everything: list[str]) -> None:
    """Writes the state file atomically (temp file in ``model_dir`` + ``os.replace``).

    Only the two fields that TF1 (2017) understands are written.
    """
    lines = [f'model_checkpoint_path: "{_quote(latest)}"']
    lines += [f'all_model_checkpoint_paths: "{_quote(p)}"' for p in everything]
    final = os.path.join(model_dir, STATE_FILE)
    tmp = os.path.join(model_dir, f".{STATE_FILE}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except OSError as err:
        _remove_quietly(tmp)
        raise CompatError(f"{final}: cannot write checkpoint state file ({err})") from None


def _absolute(model_dir: str, path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(model_dir, path)


def latest_checkpoint(model_dir: str | os.PathLike) -> str | None:
    """Prefix of the newest checkpoint named by ``model_dir/checkpoint``, or None.

    Like ``tf.train.latest_checkpoint``: None when the directory or its state file does not
    exist or the named checkpoint has no ``.index`` file. A relative ``model_checkpoint_path``
    is taken relative to ``model_dir``.

    Raises:
        CompatError: the state file exists but cannot be read or names no checkpoint.
    """
    model_dir = os.fspath(model_dir)
    state = os.path.join(model_dir, STATE_FILE)
    if not os.path.isfile(state):
        return None
    latest, _ = _read_state(state)
    prefix = _absolute(model_dir, latest)
    return prefix if os.path.isfile(prefix + ".index") else None


# --------------------------------------------------------------------------- reading

def _first_line(err: BaseException) -> str:
    text = getattr(err, "message", None) or str(err)
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def _resolve_prefix(path: str | os.PathLike) -> str:
    """Checkpoint prefix for a model directory, a prefix, or a prefix's ``.index`` file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        state = os.path.join(path, STATE_FILE)
        if not os.path.isfile(state):
            found = sorted(glob.glob(os.path.join(glob.escape(path), "*.index")))
            hint = f" (found {os.path.basename(found[-1])}; pass its prefix)" if found else ""
            raise CompatError(f"{path}: model directory has no '{STATE_FILE}' state file{hint}")
        latest, _ = _read_state(state)
        prefix = _absolute(path, latest)
        if not os.path.isfile(prefix + ".index"):
            raise CompatError(f"{state}: names checkpoint {latest!r} but "
                              f"{prefix}.index does not exist")
        return prefix
    if os.path.isfile(path + ".index"):
        return path
    if path.endswith(".index") and os.path.isfile(path):
        return path[: -len(".index")]
    if os.path.isfile(path) and os.path.basename(path) == STATE_FILE:
        return _resolve_prefix(os.path.dirname(path) or ".")
    if not os.path.exists(path) and not glob.glob(glob.escape(path) + ".*"):
        raise CompatError(f"{path}: no such model directory or checkpoint prefix")
    raise CompatError(f"{path}: not a checkpoint ({path}.index does not exist)")


def checkpoint_sha256(path: str | os.PathLike) -> dict[str, str]:
    """sha256 of a checkpoint's ``.index`` and data files (not the ``.meta``), by file name.

    ``path`` is a model directory (its latest checkpoint) or a checkpoint prefix; the digests
    identify the weights, e.g. in results files and as part of cache keys.
    """
    prefix = _resolve_prefix(path)
    digests = {}
    for name in sorted(glob.glob(glob.escape(prefix) + ".*")):
        if name.endswith(".meta") or not os.path.isfile(name):
            continue
        try:
            with open(name, "rb") as f:
                digests[os.path.basename(name)] = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as err:
            raise CompatError(f"{name}: cannot read checkpoint file ({_first_line(err)})") from None
    return digests


def _check_data_shards(prefix: str) -> None:
    """Every data shard ``<prefix>.data-<i>-of-<n>`` must exist (the index reads without them)."""
    shards = glob.glob(glob.escape(prefix) + ".data-*-of-*")
    if not shards:
        raise CompatError(f"{prefix}.data-00000-of-00001: checkpoint data file is missing")
    counts = {int(m.group(1)) for s in shards
              if (m := re.search(r"\.data-\d+-of-(\d+)$", s))}
    for total in counts:
        for i in range(total):
            shard = f"{prefix}.data-{i:05d}-of-{total:05d}"
            if not os.path.isfile(shard):
                raise CompatError(f"{shard}: checkpoint data file is missing")


def _open_reader(prefix: str) -> tf.train.CheckpointReader:
    try:
        return tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as err:
        raise CompatError(f"{prefix}.index: cannot read checkpoint index "
                          f"({_first_line(err)})") from None


def _check_data_size(reader: tf.train.CheckpointReader, prefix: str) -> None:
    """The data shards must hold at least the bytes the index describes (catches truncation,
    which the reader would otherwise only notice, or not, when reading the last tensor)."""
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    needed = sum(int(np.prod(shapes[n], dtype=np.int64)) * dtypes[n].size for n in shapes)
    shards = sorted(glob.glob(glob.escape(prefix) + ".data-*-of-*"))
    have = sum(os.path.getsize(s) for s in shards)
    if have < needed:
        raise CompatError(f"{shards[0] if len(shards) == 1 else prefix + '.data-*'}: checkpoint "
                          f"data truncated ({have} bytes, the index needs {needed})")


def _read_tensor(reader: tf.train.CheckpointReader, prefix: str, name: str) -> np.ndarray:
    try:
        return np.asarray(reader.get_tensor(name))
    except (tf.errors.OpError, ValueError, IndexError, RuntimeError) as err:
        raise CompatError(f"{prefix}.data-00000-of-00001: cannot read variable {name!r} "
                          f"(file truncated or corrupt: {_first_line(err)})") from None


def _model_variable_shapes(reader: tf.train.CheckpointReader) -> dict[str, tuple[int, ...]]:
    shapes = reader.get_variable_to_shape_map()
    return {name: tuple(shapes[name])
            for name in sorted(shapes, key=_variable_sort_key) if is_model_variable_name(name)}


def _layout_problem(stored: dict[str, tuple[int, ...]],
                    expected: dict[str, tuple[int, ...]]) -> str | None:
    """First difference between a checkpoint's model variables and an architecture, or None."""
    for name, shape in expected.items():
        if name not in stored:
            return f"variable {name!r} {list(shape)} is missing"
        if stored[name] != shape:
            return f"variable {name!r} has shape {list(stored[name])}, expected {list(shape)}"
    extra = [name for name in stored if name not in expected]
    if extra:
        return f"unexpected variable {extra[0]!r} {list(stored[extra[0]])}"
    return None


def _infer_arch(prefix: str, stored: dict[str, tuple[int, ...]]) -> str:
    """The architecture whose layout ``stored`` matches. Tried in registration order, so the
    small MNIST networks are checked before the CIFAR-10 one has to be built."""
    problems = []
    for arch in models.ARCHITECTURES:
        problem = _layout_problem(stored, tf1_layout(arch))
        if problem is None:
            return arch
        problems.append(f"{arch}: {problem}")
    problems.sort()
    raise CompatError(f"{prefix}: variables match no known architecture ({'; '.join(problems)})")


def _check_float32(reader: tf.train.CheckpointReader, prefix: str, names) -> None:
    dtypes = reader.get_variable_to_dtype_map()
    for name in names:
        if dtypes[name] != tf.float32:
            raise CompatError(f"{prefix}: variable {name!r} has dtype "
                              f"{dtypes[name].name}, expected float32")


def load_model(path: str | os.PathLike, arch: str | None = None) -> keras.Model:
    """Loads a TF1 challenge checkpoint into a fresh Keras model.

    Args:
        path: a model directory (its ``checkpoint`` state file names the checkpoint, relative
            to the directory or absolute) or a checkpoint prefix such as
            ``.../checkpoint-99900``.
        arch: a key of ``models.ARCHITECTURES``; None infers it from the stored shapes.

    Returns:
        The model: ``(N, 784)`` float32 images in [0, 1] (MNIST architectures) or
        ``(N, 32, 32, 3)`` float32 images on the 0-255 scale (``madry_cifar10``) ->
        ``(N, 10)`` float32 logits. Optimizer slots (Adam, Momentum), ``beta*_power`` and
        ``global_step`` are ignored.

    Raises:
        CompatError: missing/corrupt files, unknown architecture, or variables that do not
        match the architecture (one line naming the file and the problem).
    """
    if arch is not None:
        _check_arch(arch)
    prefix = _resolve_prefix(path)
    _check_data_shards(prefix)
    reader = _open_reader(prefix)
    _check_data_size(reader, prefix)
    stored = _model_variable_shapes(reader)
    if arch is None:
        arch = _infer_arch(prefix, stored)
    else:
        problem = _layout_problem(stored, tf1_layout(arch))
        if problem:
            raise CompatError(f"{prefix}: does not match architecture {arch}: {problem}")
    _check_float32(reader, prefix, stored)
    model = models.build_model(arch)
    for name, var in tf1_variable_map(model).items():
        var.assign(_read_tensor(reader, prefix, name))
    return model


def read_global_step(path: str | os.PathLike) -> int:
    """The ``global_step`` stored in a checkpoint (directory or prefix).

    Falls back to the ``-<step>`` suffix of the prefix when the variable is absent.
    """
    prefix = _resolve_prefix(path)
    reader = _open_reader(prefix)
    if reader.has_tensor(GLOBAL_STEP):
        _check_data_shards(prefix)
        _check_data_size(reader, prefix)
        return int(_read_tensor(reader, prefix, GLOBAL_STEP))
    match = re.search(r"-(\d+)$", prefix)
    if match is None:
        raise CompatError(f"{prefix}: checkpoint has no global_step and its name has no step")
    return int(match.group(1))


# --------------------------------------------------------------------------- optimizer slots

Optimizer = keras.optimizers.Adam | keras.optimizers.SGD


def _check_optimizer(optimizer: keras.optimizers.Optimizer) -> None:
    if isinstance(optimizer, keras.optimizers.SGD):
        if float(optimizer.momentum) == 0.0 or optimizer.nesterov:
            raise CompatError("optimizer SGD: only momentum > 0 without Nesterov maps onto the "
                              "TF1 MomentumOptimizer slots")
    elif not isinstance(optimizer, keras.optimizers.Adam):
        raise CompatError(f"optimizer {type(optimizer).__name__}: only keras.optimizers.Adam "
                          "and SGD with momentum map onto TF1 optimizer slots (AdamOptimizer, "
                          "MomentumOptimizer)")
    if getattr(optimizer, "gradient_accumulation_steps", None):
        raise CompatError("optimizer: gradient accumulation has no TF1 counterpart")


def _variable_index(optimizer: keras.optimizers.Optimizer, var: keras.Variable) -> int:
    """Position of ``var`` in the list the optimizer was built on (Keras 3 keeps its slots in
    private lists in that order)."""
    try:
        return optimizer._get_variable_index(var)
    except KeyError:
        raise CompatError(f"optimizer: not built on the model's trainable variable "
                          f"{var.path}") from None


def _adam_slots(optimizer: keras.optimizers.Adam,
                var: keras.Variable) -> tuple[keras.Variable, keras.Variable]:
    """(first moment m, second moment v) of ``var`` in a built Keras 3 Adam."""
    index = _variable_index(optimizer, var)
    return optimizer._momentums[index], optimizer._velocities[index]


def _current_learning_rate(optimizer: keras.optimizers.SGD) -> np.float32:
    """The learning rate of the optimizer's next step (a schedule evaluated at its
    ``iterations``); the Momentum slot conversion divides or multiplies by it."""
    rate = np.float32(keras.ops.convert_to_numpy(optimizer.learning_rate))
    if not np.isfinite(rate) or rate == 0:
        raise CompatError(f"optimizer SGD: learning rate {rate} cannot convert the momentum "
                          "to TF1's accumulator")
    return rate


def _beta_power(beta, iterations: int) -> np.float32:
    """TF1 stores ``beta ** (t + 1)`` after ``t`` steps (starts at beta, times beta per step)."""
    beta = float(beta() if callable(beta) else beta)
    return np.float32(beta ** (iterations + 1))


def _optimizer_tensors(optimizer: Optimizer,
                       variables: dict[str, keras.Variable]) -> dict[str, np.ndarray]:
    _check_optimizer(optimizer)
    if not optimizer.built:
        raise CompatError("optimizer: not built; call optimizer.build(model.trainable_variables)")
    out: dict[str, np.ndarray] = {}
    if isinstance(optimizer, keras.optimizers.SGD):
        rate = _current_learning_rate(optimizer)
        for name, var in variables.items():
            if var.trainable:
                m = optimizer.momentums[_variable_index(optimizer, var)]
                out[name + MOMENTUM_SLOT_SUFFIX] = -keras.ops.convert_to_numpy(m) / rate
        return out
    for name, var in variables.items():
        if not var.trainable:
            continue
        m, v = _adam_slots(optimizer, var)
        out[name + "/Adam"] = keras.ops.convert_to_numpy(m)
        out[name + "/Adam_1"] = keras.ops.convert_to_numpy(v)
    iterations = int(keras.ops.convert_to_numpy(optimizer.iterations))
    out["beta1_power"] = _beta_power(optimizer.beta_1, iterations)
    out["beta2_power"] = _beta_power(optimizer.beta_2, iterations)
    return out


def _read_slot(reader: tf.train.CheckpointReader, prefix: str, key: str,
               shape: tuple) -> np.ndarray:
    shapes = reader.get_variable_to_shape_map()
    if key not in shapes:
        raise CompatError(f"{prefix}: no optimizer slot {key!r} "
                          "(checkpoint saved without optimizer state)")
    if tuple(shapes[key]) != tuple(shape):
        raise CompatError(f"{prefix}: slot {key!r} has shape {shapes[key]}, "
                          f"expected {list(shape)}")
    return _read_tensor(reader, prefix, key)


def restore_optimizer(optimizer: Optimizer, model: keras.Model,
                      path: str | os.PathLike) -> None:
    """Loads TF1 optimizer slots into ``optimizer`` and sets its ``iterations`` to the
    checkpoint's ``global_step``, so training resumes.

    Adam: ``<var>/Adam`` -> m, ``<var>/Adam_1`` -> v. SGD with momentum:
    ``<var>/Momentum`` (TF1's accumulator ``a``, updated ``a = mu * a + g; w -= lr * a``) ->
    Keras' momentum ``m = -lr * a`` (updated ``m = mu * m - lr * g; w += m``), with ``lr`` the
    learning rate at ``global_step``; the two optimizers then take the same steps for as long as
    the learning rate stays constant. Builds the optimizer on ``model.trainable_variables`` if
    needed.

    Raises:
        CompatError: the checkpoint lacks a slot, or a slot's shape differs.
    """
    _check_optimizer(optimizer)
    prefix = _resolve_prefix(path)
    _check_data_shards(prefix)
    reader = _open_reader(prefix)
    _check_data_size(reader, prefix)
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    step = read_global_step(prefix)
    sgd = isinstance(optimizer, keras.optimizers.SGD)
    # every slot is read before anything is assigned: a bad checkpoint leaves the optimizer as
    # it was
    values: list[tuple[keras.Variable, np.ndarray]] = []
    for name, var in tf1_variable_map(model).items():
        if not var.trainable:
            continue
        if sgd:
            momentum = optimizer.momentums[_variable_index(optimizer, var)]
            values.append((momentum, _read_slot(reader, prefix, name + MOMENTUM_SLOT_SUFFIX,
                                                momentum.shape)))
            continue
        for slot, suffix in zip(_adam_slots(optimizer, var), ADAM_SLOT_SUFFIXES):
            values.append((slot, _read_slot(reader, prefix, name + suffix, slot.shape)))
    optimizer.iterations.assign(step)
    rate = _current_learning_rate(optimizer) if sgd else None
    for slot, value in values:
        slot.assign(-rate * value if sgd else value)


# --------------------------------------------------------------------------- writing

def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _checkpoint_files(prefix: str) -> list[str]:
    files = glob.glob(glob.escape(prefix) + ".data-*-of-*")
    return files + [prefix + ".index", prefix + ".meta"]


def _write_bundle(prefix: str, tensors: dict[str, np.ndarray]) -> None:
    """Writes ``tensors`` with ``SaveV2`` to a temporary prefix beside ``prefix``, then renames
    the data file and then the index, so a reader never sees a half-written checkpoint."""
    directory = os.path.dirname(prefix)
    tmp = os.path.join(directory, f".tmp-{os.path.basename(prefix)}-{uuid.uuid4().hex}")
    names = sorted(tensors)
    try:
        tf.raw_ops.SaveV2(prefix=tmp, tensor_names=names, shape_and_slices=[""] * len(names),
                          tensors=[tf.convert_to_tensor(tensors[n]) for n in names])
        os.replace(tmp + ".data-00000-of-00001", prefix + ".data-00000-of-00001")
        os.replace(tmp + ".index", prefix + ".index")
    except (tf.errors.OpError, OSError) as err:
        for leftover in _checkpoint_files(tmp):
            _remove_quietly(leftover)
        raise CompatError(f"{prefix}: cannot write checkpoint ({_first_line(err)})") from None


def _update_state(model_dir: str, prefix: str) -> None:
    """Lists ``prefix`` as newest in the state file and deletes checkpoints beyond
    ``MAX_TO_KEEP`` (only ones the state file listed and that live in ``model_dir``)."""
    state = os.path.join(model_dir, STATE_FILE)
    new = os.path.basename(prefix)
    previous: list[str] = []
    if os.path.isfile(state):
        try:
            previous = _read_state(state)[1]
        except CompatError:
            previous = []
    absolute = os.path.abspath(model_dir)
    relative = [os.path.relpath(p, absolute)
                if os.path.isabs(p) and os.path.dirname(p) == absolute else p for p in previous]
    listed = [p for p in relative if p != new] + [new]
    keep, drop = listed[-MAX_TO_KEEP:], listed[:-MAX_TO_KEEP]
    _write_state(model_dir, new, keep)
    for old in drop:
        if os.path.isabs(old) or os.sep in old:
            continue  # outside model_dir: not ours to delete
        for path in _checkpoint_files(os.path.join(model_dir, old)):
            _remove_quietly(path)


def save_checkpoint(model: keras.Model, model_dir: str | os.PathLike, global_step: int,
                    optimizer: Optimizer | None = None) -> str:
    """Writes ``model`` as a TF1 checkpoint that the original code restores unchanged.

    Files: ``<model_dir>/checkpoint-<global_step>.index`` and ``.data-00000-of-00001``
    (float32 model variables under their TF1 names, ``global_step`` as an int64 scalar), and
    the ``checkpoint`` state file (relative paths, newest last, at most ``MAX_TO_KEEP``
    checkpoints; older listed ones are deleted like ``Saver(max_to_keep=3)``).

    With a built ``keras.optimizers.Adam``, also writes ``<var>/Adam`` (m), ``<var>/Adam_1``
    (v) for every trainable variable and ``beta{1,2}_power = beta ** (iterations + 1)``; with
    a built ``keras.optimizers.SGD`` with momentum (the CIFAR-10 challenge's
    ``MomentumOptimizer``), ``<var>/Momentum = -m / lr`` (see :func:`restore_optimizer`).

    Returns:
        The checkpoint prefix written, ``<model_dir>/checkpoint-<global_step>``.
    """
    model_dir = os.fspath(model_dir)
    try:
        os.makedirs(model_dir, exist_ok=True)
    except OSError as err:
        raise CompatError(f"{model_dir}: cannot create model directory ({err})") from None
    variables = tf1_variable_map(model)
    tensors = {name: keras.ops.convert_to_numpy(var).astype(np.float32)
               for name, var in variables.items()}
    if optimizer is not None:
        tensors.update(_optimizer_tensors(optimizer, variables))
    tensors[GLOBAL_STEP] = np.asarray(int(global_step), dtype=np.int64)
    prefix = os.path.join(model_dir, f"{CHECKPOINT_BASENAME}-{int(global_step)}")
    _write_bundle(prefix, tensors)
    _update_state(model_dir, prefix)
    return prefix
