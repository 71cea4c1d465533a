"""The one place that picks Keras.

tfmot (pruning, QAT) works only with Keras 2, i.e. the ``tf_keras`` package, and in a
fresh Colab ``tf.keras`` is Keras 3 once TensorFlow was imported (``TF_USE_LEGACY_KERAS``
no longer helps then). Every tfkd module imports Keras from here and nowhere else; no
other library's globals are changed.
"""

import json
import os
import re
import zipfile

import tf_keras as keras

__all__ = ["keras", "require_tf_keras_model", "load_user_model", "check_user_model_file",
           "ModelFileError", "predict"]


def predict(model, x, batch_size=256):
    """``model.predict`` on an array, fed through ``tf.data``; returns float32 NumPy.

    With op determinism on (the pipeline turns it on), Keras' own adapter for NumPy
    inputs builds a parallel map that TensorFlow 2.21's determinism rewrite turns into a
    plain map without dropping its ``use_unbounded_threadpool`` attribute, and every
    predict with a partial last batch logs "NodeDef mentions attribute
    use_unbounded_threadpool which is not in the op definition". A ``tf.data`` input
    never takes that path.

    Args:
      model: a Keras model.
      x: inputs ``[N, ...]`` (any array-like).
      batch_size: inference batch size.

    Returns:
      The outputs ``[N, ...]`` as float32.
    """
    import numpy as np
    import tensorflow as tf

    x = np.asarray(x, np.float32)
    if len(x) == 0:
        return np.zeros((0,) + tuple(model.output_shape[1:]), np.float32)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(batch_size)
    return np.asarray(model.predict(ds, verbose=0), np.float32)


def require_tf_keras_model(model, name):
    """Checks that ``model`` is a ``tf_keras`` model.

    Args:
      model: the object handed to tfkd.
      name: the argument's name, used in the error.

    Returns:
      ``model`` unchanged.

    Raises:
      TypeError: ``model`` is a Keras 3 model or not a Keras model at all.
    """
    if isinstance(model, keras.Model):
        return model
    module = type(model).__module__
    if module.startswith("keras") and not module.startswith("keras.src.legacy"):
        raise TypeError(
            f"{name}: got a Keras 3 model ({type(model).__name__} from '{module}'); tfkd "
            "needs Keras 2 models: build it with `import tf_keras as keras` "
            "(tfmot does not support Keras 3)")
    raise TypeError(f"{name}: must be a tf_keras Model, got {type(model).__name__}")


# -- model files that may come from anyone ------------------------------------------------------

class ModelFileError(ValueError):
    """A model file that tfkd refuses or cannot load; the message names the key and the file."""


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
#: Keras' own classes and functions (``keras.layers``, ``tf_keras.src.engine.functional``...).
_KERAS_MODULE = re.compile(r"^(?:tf_)?keras(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
#: TensorFlow ops a ``TFOpLambda`` layer may not call: they read or write files, run Python,
#: or reach outside the model. Everything else is math on tensors.
_FORBIDDEN_TF_OPS = ("io.", "raw_ops.", "compat.", "py_function", "numpy_function", "print",
                     "summary.", "debugging.", "saved_model.", "data.", "lookup.", "distribute.",
                     "config.", "sysconfig.", "load_op_library", "load_library", "train.",
                     "experimental.", "autograph.", "keras.", "estimator.", "tpu.", "queue.",
                     "Variable", "function", "init_scope", "get_logger")


def _conversion_hint(path):
    return (f"convert it once, in a Python session you trust: "
            f"keras.models.load_model('{path}').save('{os.path.splitext(path)[0]}.keras')")


def _check_config(obj, path, key, depth=0):
    """Refuses what the ``.keras`` config asks Keras to import or run besides its own layers."""
    if depth > 200:
        raise ModelFileError(f"{key}: {path}: config.json is nested too deeply")
    if isinstance(obj, list):
        for v in obj:
            _check_config(v, path, key, depth + 1)
        return
    if not isinstance(obj, dict):
        return
    cls = obj.get("class_name")
    conf = obj.get("config") if isinstance(obj.get("config"), dict) else {}
    if cls == "Lambda":
        raise ModelFileError(
            f"{key}: {path} holds a Lambda layer ({conf.get('name', '?')}), which is Python code; "
            "tfkd does not run code from model files: rebuild the model without Lambda layers")
    module = obj.get("module")
    if isinstance(module, str) and not _KERAS_MODULE.match(module):
        raise ModelFileError(
            f"{key}: {path} refers to the Python module '{module}' ({cls}); tfkd loads only "
            "Keras' own layers from model files")
    function = conf.get("function")
    if cls in ("TFOpLambda", "SlicingOpLambda") and isinstance(function, str) and \
            function.startswith(_FORBIDDEN_TF_OPS):
        raise ModelFileError(
            f"{key}: {path} calls the TensorFlow op tf.{function}, which can reach outside the "
            "model (files, Python); tfkd refuses it in model files")
    for v in obj.values():
        _check_config(v, path, key, depth + 1)


def _check_archive(path, key):
    from tfkd import limits

    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            total = sum(i.file_size for i in infos)
            if total > limits.MAX_MODEL_FILE_BYTES:
                raise ModelFileError(f"{key}: {path} unpacks to {total} bytes, more than the "
                                     f"{limits.MAX_MODEL_FILE_BYTES} byte limit")
            names = {i.filename: i for i in infos}
            if "config.json" not in names:
                raise ModelFileError(f"{key}: {path} is not a .keras file (no config.json inside)")
            if names["config.json"].file_size > limits.MAX_MODEL_JSON_BYTES:
                raise ModelFileError(f"{key}: {path}: config.json is larger than the "
                                     f"{limits.MAX_MODEL_JSON_BYTES} byte limit")
            config = json.loads(z.read("config.json").decode("utf-8"))
    except ModelFileError:
        raise
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, UnicodeDecodeError,
            ValueError, RecursionError, EOFError) as e:
        raise ModelFileError(f"{key}: {path} is a damaged .keras file ({_first_line(e)})") from None
    _check_config(config, path, key)


def _first_line(e):
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def check_user_model_file(path, key):
    """The checks of :func:`load_user_model` that need no Keras: kind, format, contents.

    Cheap enough for ``tfkd validate``: reads the file's first bytes and the archive's
    ``config.json``, never the weights.

    Raises:
      ModelFileError: a refused, damaged or unreadable file; the message is one line.
    """
    from tfkd import safefile

    path = os.fspath(path)
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            raise ModelFileError(f"{key}: {path} is a TensorFlow SavedModel, which can run code "
                                 f"when loaded; tfkd loads only .keras files: "
                                 f"{_conversion_hint(path)}")
        raise ModelFileError(f"{key}: {path} is a folder, not a .keras file")
    try:
        with safefile.open_regular(path) as f:
            head = f.read(8)
    except OSError as e:
        raise ModelFileError(f"{key}: cannot read {path} ({e.strerror or e})") from None
    if head.startswith(_HDF5_MAGIC) or path.lower().endswith((".h5", ".hdf5")):
        raise ModelFileError(f"{key}: {path} is a legacy HDF5 model, which can run code when "
                             f"loaded; tfkd loads only .keras files: {_conversion_hint(path)}")
    if not head.startswith(_ZIP_MAGIC) or not path.lower().endswith(".keras"):
        raise ModelFileError(f"{key}: {path} is not a .keras file (the zip archive that "
                             "model.save('name.keras') writes)")
    _check_archive(path, key)


def load_user_model(path, key):
    """Loads a model file that may come from anyone: only ``.keras``, in Keras safe mode.

    Legacy HDF5 (``.h5``) and SavedModel files are refused: both can run Python code
    while loading (a Lambda layer's marshalled bytecode, a SavedModel's traced functions).
    A ``.keras`` file is checked before Keras reads it: its unpacked size, no Lambda
    layer, no class or function from outside Keras, no TensorFlow op that reaches files
    or Python; Keras then loads it with ``safe_mode=True``, and the parameter count is
    bounded by ``tfkd.limits.MAX_MODEL_PARAMS``.

    Args:
      path: the model file.
      key: the config key or option it came from, used in errors (``teacher.path``).

    Returns:
      The ``tf_keras`` model, not compiled.

    Raises:
      ModelFileError: a refused, damaged or unreadable file; the message is one line.
    """
    from tfkd import limits

    path = os.fspath(path)
    check_user_model_file(path, key)
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # noqa: BLE001 - any failure of a hostile file is one line
        raise ModelFileError(f"{key}: cannot load {path} ({_first_line(e)})") from None
    try:
        limits.check_model_params(model.count_params(), key)
    except ValueError as e:
        raise ModelFileError(str(e)) from None
    return require_tf_keras_model(model, key)
