"""The run folder: every file name in it, and every load and save of what it holds.

Layout of a run folder ``DIR``::

    resolved.yaml  metrics.json  timings.json  report.md  plots/*.png  logs/<stage>/
    data/      store/ (manifest.json, <split>-NNNNN.tfrecord) features.json labels.json
    teacher/   teacher.keras history.json
    distill/   student.keras history.json
    prune/     student.keras history.json
    quantize/  model_int8.tflite tflm_predictions.npy verification.json
    export/    <name>.tflite <name>.cc <name>.h <name>_ops.h [<name>_golden.h]
    <stage>/done.json   the runner's record: the stage's key and metrics

Stages never see these names: they take and return the objects below (:class:`Data`,
:class:`Trained`, :class:`Quantized`, :class:`Firmware`), and :func:`save` / :func:`load`
move them in and out of a stage folder.
"""

import dataclasses
import os
import typing

import numpy as np
import tensorflow as tf
import yaml

from tfkd._keras import ModelFileError, check_user_model_file, keras
from tfkd.data.dataset import Data
from tfkd.data.frontend import FeatureParams
from tfkd.data.store import MANIFEST, FeatureStore, StoreError
from tfkd.data.store_data import StoreData
from tfkd.fileio import atomic_write, read_json, write_json

__all__ = ["Trained", "Quantized", "Firmware", "RunFolder", "save", "load", "load_data",
           "load_model", "load_history", "load_quantized", "ArtifactError", "store_folder"]

RESOLVED, METRICS, TIMINGS, REPORT, PLOTS, LOGS = (
    "resolved.yaml", "metrics.json", "timings.json", "report.md", "plots", "logs")
RECORD = "done.json"
FEATURES, FEATURE_PARAMS, LABELS = "features.npz", "features.json", "labels.json"
BACKUP = ".backup"
#: The data stage's feature store (a folder; see :mod:`tfkd.data.store`).
STORE = "store"
HISTORY = "history.json"
INT8, PREDICTIONS, VERIFICATION = "model_int8.tflite", "tflm_predictions.npy", "verification.json"
#: The model file of each stage that trains one.
MODEL_FILES = {"teacher": "teacher.keras", "distill": "student.keras", "prune": "student.keras"}


class ArtifactError(ValueError):
    """A run folder that lacks a file; the message names the file."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Trained:
    """A trained model and its training history."""

    model: typing.Any
    """The Keras model."""
    history: dict = dataclasses.field(default_factory=dict)
    """Keras history (``{metric: [per epoch]}``), or ``{run: history}`` for several runs."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Quantized:
    """An int8 model and what its verification measured."""

    flat: bytes
    """The ``.tflite`` bytes."""
    predictions: np.ndarray
    """TFLite Micro's argmax per test clip."""
    verification: dict
    """The verification report: measured values (``ops``, ``arena_bytes_host``,
    ``accuracy_tflm``, ...) and the gates."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Firmware:
    """Firmware files by name (``{"<name>.cc": text, ...}``) and their kinds."""

    files: dict
    """File name → bytes or text."""
    kinds: dict
    """Kind (``tflite``, ``cc``, ``h``, ``ops``, ``golden``) → file name."""


# -- per-stage products -------------------------------------------------------------------

def store_folder(folder):
    """The feature store's folder inside a data stage folder."""
    return os.path.join(folder, STORE)


def _save_data(folder, data):
    if isinstance(data, StoreData):
        # The store was streamed into the stage folder while it was made; a store made
        # elsewhere (a notebook's temporary folder) is copied in.
        target = store_folder(folder)
        if os.path.abspath(data.store.folder) != os.path.abspath(target):
            os.makedirs(target, exist_ok=True)
            for name in [os.path.basename(f) for s in data.store.splits for f in data.store.files(s)] \
                    + [MANIFEST]:
                tf.io.gfile.copy(os.path.join(data.store.folder, name), os.path.join(target, name),
                                 overwrite=True)
    else:  # an in-memory Data (small sets built by hand)
        x, y = data.train_arrays()
        (xv, yv), (xt, yt) = data.arrays("validation"), data.arrays("test")
        tmp = os.path.join(folder, f".tmp-{FEATURES}")
        with open(tmp, "wb") as f:
            np.savez(f, x_train=x, y_train=y, x_val=xv, y_val=yv, x_test=xt, y_test=yt)
        os.replace(tmp, os.path.join(folder, FEATURES))
    write_json(os.path.join(folder, FEATURE_PARAMS), data.features.to_dict())
    write_json(os.path.join(folder, LABELS), list(data.labels))


def load_data(folder, verify=True):
    """The data stage's Data: the feature store's :class:`StoreData` (its shards checked
    against their checksums unless ``verify`` is false), or the in-memory
    :class:`Data` of a run folder from before the store.

    Raises:
      ArtifactError: the folder has neither, or a shard is missing, changed or corrupt.
    """
    if os.path.isfile(os.path.join(store_folder(folder), MANIFEST)):
        try:
            data = StoreData(FeatureStore.open(store_folder(folder)))
            if verify:
                data.verify()
        except StoreError as e:
            raise ArtifactError(f"{e}; delete {folder} and run again with --resume to rebuild it") \
                from None
        return data
    with np.load(_need(folder, FEATURES)) as z:
        a = {k: z[k] for k in z.files}
    return Data(load_labels(folder), load_feature_params(folder), (a["x_train"], a["y_train"]),
                (a["x_val"], a["y_val"]), (a["x_test"], a["y_test"]))


def load_labels(folder):
    """The data stage's label names (model order)."""
    return read_json(_need(folder, LABELS))


def load_feature_params(folder):
    """The data stage's :class:`FeatureParams`."""
    return FeatureParams.from_dict(read_json(_need(folder, FEATURE_PARAMS)))


def load_model(folder, stage):
    """The Keras model a training stage saved (not compiled).

    A run folder may come from anyone (``--resume``, ``tfkd eval``): the file gets the
    same checks as a user's teacher (``tfkd._keras.check_user_model_file``) and loads in
    Keras' safe mode.

    Raises:
      ArtifactError: the file is missing, refused or damaged (one line naming it).
    """
    path = _need(folder, MODEL_FILES[stage])
    try:
        check_user_model_file(path, "run folder")
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except ModelFileError as e:
        raise ArtifactError(str(e)) from None


def load_history(folder):
    """A training stage's history, or None when it has none."""
    path = os.path.join(folder, HISTORY)
    return read_json(path) if os.path.exists(path) else None


def load_quantized(folder):
    """The quantize stage's :class:`Quantized`."""
    with open(_need(folder, INT8), "rb") as f:
        flat = f.read()
    return Quantized(flat=flat, predictions=np.load(_need(folder, PREDICTIONS)),
                     verification=read_json(_need(folder, VERIFICATION)))


def _save_trained(stage):
    def save_trained(folder, trained):
        trained.model.save(os.path.join(folder, MODEL_FILES[stage]))
        write_json(os.path.join(folder, HISTORY), trained.history)
    return save_trained


def _save_quantized(folder, q):
    atomic_write(os.path.join(folder, INT8), q.flat)
    np.save(os.path.join(folder, PREDICTIONS), q.predictions)
    write_json(os.path.join(folder, VERIFICATION), q.verification)


def _save_firmware(folder, fw):
    for name, content in fw.files.items():
        atomic_write(os.path.join(folder, name), content)


_SAVE = {"data": _save_data, "teacher": _save_trained("teacher"),
         "distill": _save_trained("distill"), "prune": _save_trained("prune"),
         "quantize": _save_quantized, "export": _save_firmware}
_LOAD = {"data": load_data, "teacher": lambda f: load_model(f, "teacher"),
         "distill": lambda f: load_model(f, "distill"), "prune": lambda f: load_model(f, "prune"),
         "quantize": load_quantized}


def save(stage, folder, product):
    """Saves a stage's product into its folder under the stage's file names."""
    _SAVE[stage](folder, product)


def load(stage, folder):
    """What a later stage reads of ``stage``: its Data, its model or its Quantized."""
    return _LOAD[stage](folder)


def _need(folder, name):
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        raise ArtifactError(f"{folder}: no {name}; is it a finished tfkd run?")
    return path


# -- the run folder -----------------------------------------------------------------------

class RunFolder:
    """Paths and files of one run folder (see the module docstring for the layout).

    Args:
      root: the run folder.
    """

    def __init__(self, root):
        self.root = str(root)

    def stage(self, name):
        """A finished stage's folder."""
        return os.path.join(self.root, name)

    def partial(self, name):
        """Where a running stage writes before it is renamed to :meth:`stage`."""
        return os.path.join(self.root, f".{name}.partial")

    def backup(self, name):
        """Per-epoch training checkpoints of a running stage (removed once it finished)."""
        return os.path.join(self.root, BACKUP, name)

    def log_dir(self, name):
        """TensorBoard folder of one training run."""
        return os.path.join(self.root, LOGS, name)

    def plot(self, name):
        """A plot's path."""
        return os.path.join(self.root, PLOTS, name)

    @property
    def report(self):
        """The report's path."""
        return os.path.join(self.root, REPORT)

    def is_run(self):
        """Whether the folder holds a run (a resolved config)."""
        return os.path.isfile(os.path.join(self.root, RESOLVED))

    def write_resolved(self, raw):
        """Writes the resolved config (plain data)."""
        atomic_write(os.path.join(self.root, RESOLVED), yaml.safe_dump(raw, sort_keys=False))

    def read_metrics(self):
        """The run's metrics so far (empty when none)."""
        path = os.path.join(self.root, METRICS)
        return read_json(path) if os.path.exists(path) else {}

    def write_metrics(self, metrics):
        write_json(os.path.join(self.root, METRICS), metrics)

    def add_timings(self, timings):
        """Merges stage wall times (seconds) into ``timings.json``."""
        path = os.path.join(self.root, TIMINGS)
        old = read_json(path) if os.path.exists(path) else {}
        write_json(path, {**old, **timings})

    def record(self, name):
        """A finished stage's record ``{"key", "metrics"}``, or None."""
        path = os.path.join(self.stage(name), RECORD)
        return read_json(path) if os.path.exists(path) else None

    def write_record(self, folder, key, metrics):
        """Writes a stage's record into its (partial) folder."""
        write_json(os.path.join(folder, RECORD), {"key": key, "metrics": metrics})

    def load(self, stage):
        """What a later stage reads of a finished ``stage`` (see :func:`load`)."""
        return load(stage, self.stage(stage))

    def history(self, stage):
        """A training stage's history, or None."""
        return load_history(self.stage(stage))

    def test_predictions(self):
        """``(test labels, TFLM's test predictions)``, or None before the quantize stage."""
        try:
            return load_data(self.stage("data"), verify=False).arrays("test")[1], \
                load_quantized(self.stage("quantize")).predictions
        except ArtifactError:
            return None
