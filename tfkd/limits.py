"""Upper bounds on every size an input can ask for, and the checks that apply them.

Configs, data folders and model files may come from anyone (see ``SECURITY.md``). Each
number below bounds what one of them can make tfkd allocate or loop over; each is far
above what a keyword-spotting run needs, so that only broken or hostile inputs meet it.
The checks raise ``ValueError`` whose message starts with the key it names.
"""

import dataclasses
import math

__all__ = [
    "MIN_WAV_RATE", "MAX_WAV_RATE", "MAX_WAV_CHANNELS", "MAX_CLIP_SECONDS", "MAX_NOISE_SECONDS",
    "MAX_WAV_DATA_BYTES", "MAX_LIST_FILE_BYTES", "MAX_YAML_BYTES", "MAX_YAML_DEPTH",
    "MAX_YAML_EXPANSION", "MAX_MODEL_FILE_BYTES", "MAX_MODEL_JSON_BYTES", "MAX_MODEL_PARAMS",
    "MAX_FEATURE_SAMPLE_RATE", "MAX_CLIP_MS", "MAX_NUM_CHANNELS", "MAX_FEATURE_VALUES",
    "MAX_EPOCHS", "MAX_BATCH_SIZE", "MAX_GENERATIONS", "MAX_ASSISTANTS", "MAX_REPRESENTATIVE",
    "MAX_GOLDEN_VECTORS", "check_features", "check_training", "check_finite",
    "count_params_unallocated", "check_model_params"]

# -- WAV files (tfkd.data.wav) ---------------------------------------------------------------
MIN_WAV_RATE = 1_000
"""Lowest sample rate a WAV header may declare, in Hz."""
MAX_WAV_RATE = 384_000
"""Highest sample rate a WAV header may declare, in Hz (the fastest studio rate)."""
MAX_WAV_CHANNELS = 32
"""Most interleaved channels in one WAV file."""
MAX_CLIP_SECONDS = 600
"""Longest clip file: 10 minutes (clips are cut to ``features.clip_ms`` anyway)."""
MAX_NOISE_SECONDS = 3600
"""Longest ``_background_noise_`` recording: 1 hour (Speech Commands' are about 1 minute)."""
MAX_WAV_DATA_BYTES = 256 * 2 ** 20
"""Largest audio payload of one WAV file that is read: 256 MiB (about 2 h of 16 kHz 16-bit)."""
MAX_LIST_FILE_BYTES = 64 * 2 ** 20
"""Largest ``validation_list.txt`` / ``testing_list.txt`` (Speech Commands': 0.4 MB)."""

# -- YAML (tfkd.yamlio) ---------------------------------------------------------------------
MAX_YAML_BYTES = 4 * 2 ** 20
"""Largest config file or ``--set`` value: 4 MiB."""
MAX_YAML_DEPTH = 32
"""Deepest nesting of mappings and lists (a pipeline config needs 5)."""
MAX_YAML_EXPANSION = 10
"""Aliases may make the loaded data at most this many times the written nodes (plus 1000)."""

# -- model files (tfkd._keras.load_user_model) -------------------------------------------------
MAX_MODEL_FILE_BYTES = 2 * 2 ** 30
"""Largest ``.keras`` file, counting its unpacked members: 2 GiB."""
MAX_MODEL_JSON_BYTES = 16 * 2 ** 20
"""Largest ``config.json`` inside a ``.keras`` file."""
MAX_MODEL_PARAMS = 100_000_000
"""Most parameters of any model tfkd builds or loads (400 MB of float32 weights)."""

# -- features and training (tfkd.config) -------------------------------------------------------
MAX_FEATURE_SAMPLE_RATE = 48_000
"""Highest ``features.sample_rate``, in Hz."""
MAX_CLIP_MS = 10_000
"""Longest ``features.clip_ms``: 10 s."""
MAX_NUM_CHANNELS = 256
"""Most filterbank channels (``features.num_channels``) and MFCCs (``features.num_mfcc``)."""
MAX_FEATURE_VALUES = 32_768
"""Most feature values per clip, frames × width (the default is 49 × 40 = 1960)."""
MAX_EPOCHS = 10_000
"""Most epochs of any training stage."""
MAX_BATCH_SIZE = 65_536
"""Largest batch size."""
MAX_GENERATIONS = 100
"""Most born-again generations."""
MAX_ASSISTANTS = 16
"""Longest teacher-assistant chain."""
MAX_REPRESENTATIVE = 100_000
"""Most calibration clips (``quantize.representative_samples``)."""
MAX_GOLDEN_VECTORS = 1_000
"""Most golden vectors written into the exported header."""


def _bound(value, limit, key):
    if value > limit:
        raise ValueError(f"{key}: must be <= {limit}, got {value!r}")


def check_features(fp, prefix="features"):
    """Checks a ``tfkd.data.frontend.FeatureParams`` against the feature bounds.

    Raises:
      ValueError: a bound is broken; the message names ``prefix.<field>``.
    """
    _bound(fp.sample_rate, MAX_FEATURE_SAMPLE_RATE, f"{prefix}.sample_rate")
    _bound(fp.clip_ms, MAX_CLIP_MS, f"{prefix}.clip_ms")
    _bound(fp.num_channels, MAX_NUM_CHANNELS, f"{prefix}.num_channels")
    _bound(fp.num_mfcc, MAX_NUM_CHANNELS, f"{prefix}.num_mfcc")
    width = fp.num_mfcc if fp.kind == "mfcc" else fp.num_channels
    frames = 1 + (fp.sample_rate * fp.clip_ms // 1000 - fp.sample_rate * fp.window_ms // 1000) \
        // max(1, fp.sample_rate * fp.stride_ms // 1000)
    if frames * width > MAX_FEATURE_VALUES:
        raise ValueError(f"{prefix}: {frames} frames × {width} values per clip = {frames * width}, "
                         f"more than the {MAX_FEATURE_VALUES} limit (raise stride_ms or lower "
                         "num_channels / clip_ms)")


#: (key, bound) for the integer sizes of a pipeline config (paths into ``to_dict`` form).
_TRAINING = (("teacher.epochs", MAX_EPOCHS), ("teacher.batch_size", MAX_BATCH_SIZE),
             ("distill.epochs", MAX_EPOCHS), ("distill.batch_size", MAX_BATCH_SIZE),
             ("distill.generations", MAX_GENERATIONS), ("prune.epochs", MAX_EPOCHS),
             ("quantize.qat_epochs", MAX_EPOCHS),
             ("quantize.representative_samples", MAX_REPRESENTATIVE),
             ("export.golden_vectors", MAX_GOLDEN_VECTORS))


def check_training(cfg):
    """Checks the epochs, batch sizes and counts of a ``PipelineConfig`` against their bounds.

    Raises:
      ValueError: a bound is broken; the message names the key.
    """
    for key, limit in _TRAINING:
        section, _, field = key.partition(".")
        obj = getattr(cfg, section)
        if obj is not None:
            _bound(getattr(obj, field), limit, key)
    _bound(len(cfg.distill.assistants), MAX_ASSISTANTS, "distill.assistants (length)")


def check_finite(obj, prefix=""):
    """Checks that every float in a (nested) dataclass, dict or list is finite.

    ``.inf`` passes "must be > 0" checks and then fails in training, so it is refused here.

    Raises:
      ValueError: ``<key>: must be a finite number, got inf``.
    """
    def key(k):
        return f"{prefix}.{k}" if prefix else str(k)

    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            check_finite(getattr(obj, f.name), key(f.name))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            check_finite(v, key(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_finite(v, f"{prefix}[{i}]")
    elif isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"{prefix}: must be a finite number, got {obj!r}")


def count_params_unallocated(build):
    """Counts a model's parameters without allocating its weights.

    The model is built in a TensorFlow graph that is never run, so that a model of
    billions of parameters is counted in well under a second and a few MB.

    Args:
      build: a callable without arguments that builds a ``tf_keras`` model.

    Returns:
      The parameter count.
    """
    import tensorflow as tf

    with tf.Graph().as_default():
        # This graph's own seed: with op determinism on, random ops (dropout) need one.
        tf.compat.v1.set_random_seed(0)
        return int(build().count_params())


def check_model_params(count, key):
    """Raises ``ValueError`` when ``count`` parameters exceed :data:`MAX_MODEL_PARAMS`."""
    if count > MAX_MODEL_PARAMS:
        raise ValueError(f"{key}: the model has {count:,} parameters, more than the "
                         f"{MAX_MODEL_PARAMS:,} limit")
