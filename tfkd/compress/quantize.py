"""Full-integer post-training quantization and quantization-aware training.

The model is converted with int8 input and output and ``TFLITE_BUILTINS_INT8`` only; then
:func:`tfkd.verify.check_int8` checks that every tensor is int8/int32 and every op a
built-in. The checks and scores of a converted model are :mod:`tfkd.verify`; the runtimes
that run it are :mod:`tfkd.export.micro`.
"""

import numpy as np
import tensorflow as tf

from tfkd.verify import ConversionError, check_int8

__all__ = ["ConversionError", "convert_int8", "convert_float", "quantization_aware"]


def _concrete_function(model):
    shape = [1, *model.input_shape[1:]]
    fn = tf.function(lambda x: model(x, training=False))
    return fn.get_concrete_function(tf.TensorSpec(shape, tf.float32))


def convert_float(model):
    """A float32 ``.tflite`` of ``model`` (batch size 1), for conversion checks."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([_concrete_function(model)], model)
    return converter.convert()


def convert_int8(model, representative):
    """Converts a Keras model to a full-int8 ``.tflite`` (int8 in and out).

    Args:
      model: a ``tf_keras`` model returning logits.
      representative: float32 inputs ``[N, ...]`` drawn from the training split that
        calibrate the activation ranges.

    Returns:
      The ``.tflite`` flatbuffer as bytes, already checked by :func:`check_int8`.

    Raises:
      ConversionError: an op has no int8 built-in kernel (the message names it).
    """
    rep = np.asarray(representative, np.float32)
    if len(rep) == 0:
        raise ConversionError("quantize: the representative set is empty")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([_concrete_function(model)], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def gen():
        for row in rep:
            yield [row[None]]

    converter.representative_dataset = gen
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    try:
        flat = converter.convert()
    except Exception as e:  # the converter raises several internal error types
        msg = str(e)
        ops = sorted(set(_ops_in_message(msg)))
        what = f"op(s) {', '.join(ops)}" if ops else "an op"
        raise ConversionError(f"quantize: {what} cannot be converted to built-in int8 "
                              f"TFLite ({msg.strip().splitlines()[0][:300]})") from None
    check_int8(flat)
    return flat


def _ops_in_message(msg):
    import re

    found = re.findall(r"'(?:tf|tfl)\.([A-Za-z0-9_]+)'", msg)
    # A kernel that fails during calibration: "Node number 1 (RFFT2D) failed to prepare."
    return found or re.findall(r"\b(?:tf|tfl)\.([A-Za-z0-9_]+)", msg) or \
        re.findall(r"\(([A-Z][A-Z0-9_]*)\) failed to prepare", msg)


def quantization_aware(model, train, *, preserve_sparsity=False):
    """Quantization-aware training (tfmot) of a functional model, fine-tuned by ``train``.

    Args:
      model: the float student (not modified).
      train: ``train(qat_model, callbacks)`` fine-tunes the model it is given (the
        pipeline passes one that keeps distilling from the teacher).
      preserve_sparsity: use tfmot's prune-preserving scheme, so that a magnitude-pruned
        student keeps its zeros.

    Returns:
      The QAT model; :func:`convert_int8` turns it into a full-int8 ``.tflite``.
    """
    import tensorflow_model_optimization as tfmot

    from tfkd._keras import keras

    base = keras.models.clone_model(model)
    base.set_weights(model.get_weights())
    q = tfmot.quantization.keras
    if preserve_sparsity:
        from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (  # noqa: E501
            default_8bit_prune_preserve_quantize_scheme as pp)

        qat = q.quantize_apply(q.quantize_annotate_model(base),
                               pp.Default8BitPrunePreserveQuantizeScheme())
    else:
        qat = q.quantize_model(base)
    train(qat, [])
    return qat
