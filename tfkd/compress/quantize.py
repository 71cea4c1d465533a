"""Full-integer post-training quantization and the int8 checks on the host.

The model is converted with int8 input and output and ``TFLITE_BUILTINS_INT8`` only; then
every tensor must be int8/int32 and every op a built-in. The int8 helpers read the
quantization parameters from the model, never assume them.
"""

import numpy as np
import tensorflow as tf

__all__ = ["ConversionError", "convert_int8", "model_ops", "check_int8", "io_quantization",
           "quantize_input", "dequantize_output", "LiteRTRunner", "representative_sample",
           "convert_float", "score_int8", "tflite_weight_sparsity", "quantization_aware"]

_INT_TYPES = (np.int8, np.int32)


class ConversionError(RuntimeError):
    """The model cannot be converted to (or is not) a pure built-in int8 model."""


def _concrete_function(model):
    shape = [1, *model.input_shape[1:]]
    fn = tf.function(lambda x: model(x, training=False))
    return fn.get_concrete_function(tf.TensorSpec(shape, tf.float32))


def convert_float(model):
    """A float32 ``.tflite`` of ``model`` (batch size 1), for conversion checks."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([_concrete_function(model)], model)
    return converter.convert()


def representative_sample(x, n, seed=0):
    """Draws ``n`` inputs from ``x`` (the training split) without replacement, seeded."""
    x = np.asarray(x)
    if n >= len(x):
        return x
    idx = np.random.default_rng(seed).choice(len(x), size=n, replace=False)
    return x[np.sort(idx)]


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
    return found or re.findall(r"\b(?:tf|tfl)\.([A-Za-z0-9_]+)", msg)


def _interpreter(flat):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    return Interpreter(model_content=flat,
                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


def model_ops(flat):
    """The distinct op names of a ``.tflite`` model, in first-use order (``CONV_2D``, ...)."""
    ops = []
    for op in _interpreter(flat)._get_ops_details():
        if op["op_name"] not in ops:
            ops.append(op["op_name"])
    return ops


def check_int8(flat):
    """Checks that a model is pure built-in int8: int8/int32 tensors, built-in ops.

    Returns:
      The op names (see :func:`model_ops`).

    Raises:
      ConversionError: naming the first float tensor or non-built-in op.
    """
    try:
        interp = _interpreter(flat)
    except (RuntimeError, ValueError) as e:
        raise ConversionError(f"quantize: the model does not load in LiteRT: {e}") from None
    ops = []
    for op in interp._get_ops_details():
        name = op["op_name"]
        if name in ("DELEGATE", "CUSTOM") or name.startswith("Flex") or not name.isupper():
            raise ConversionError(f"quantize: op {name} is not a TFLite built-in")
        if name not in ops:
            ops.append(name)
    for t in interp.get_tensor_details():
        if t["dtype"] not in _INT_TYPES:
            raise ConversionError(f"quantize: tensor {t['name']!r} is {np.dtype(t['dtype']).name}, "
                                  "not int8/int32")
    return ops


def io_quantization(flat):
    """``((in_scale, in_zero_point), (out_scale, out_zero_point))`` read from the model."""
    interp = _interpreter(flat)
    i = interp.get_input_details()[0]["quantization"]
    o = interp.get_output_details()[0]["quantization"]
    return (float(i[0]), int(i[1])), (float(o[0]), int(o[1]))


def quantize_input(x, scale, zero_point):
    """Float → int8 as TFLite does: round(x / scale) + zero_point, saturated to int8."""
    q = np.round(np.asarray(x, np.float32) / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize_output(q, scale, zero_point):
    """int8 → float: (q - zero_point) * scale (int32 first: int8 arithmetic would wrap)."""
    return (np.asarray(q, np.int32) - zero_point).astype(np.float32) * scale


class LiteRTRunner:
    """Runs a ``.tflite`` model in LiteRT, one sample at a time (batch 1 as on the device)."""

    def __init__(self, flat):
        self.interp = _interpreter(flat)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]

    def run_int8(self, x_q):
        """Raw int8 outputs ``[N, C]`` for int8 inputs ``[N, ...]``."""
        outs = []
        for row in np.asarray(x_q):
            self.interp.set_tensor(self.inp["index"], row[None].astype(self.inp["dtype"]))
            self.interp.invoke()
            outs.append(self.interp.get_tensor(self.out["index"])[0].copy())
        return np.stack(outs) if outs else np.zeros((0,) + tuple(self.out["shape"][1:]), np.int8)

    def run_float(self, x):
        """Float outputs for float inputs (quantizing in and dequantizing out if int8)."""
        x = np.asarray(x, np.float32)
        if self.inp["dtype"] == np.int8:
            s, z = self.inp["quantization"]
            x = quantize_input(x, s, z)
        y = self.run_int8(x)
        if self.out["dtype"] == np.int8:
            s, z = self.out["quantization"]
            y = dequantize_output(y, s, z)
        return y


def score_int8(flat, x, y):
    """Scores an int8 model on float features in LiteRT and in TFLite Micro.

    Args:
      flat: the int8 ``.tflite`` bytes.
      x: float features ``[N, ...]`` (quantized here with the model's own input parameters).
      y: integer labels ``[N]``.

    Returns:
      ``(metrics, tflm_predictions)``: ``accuracy_int8`` (LiteRT), ``accuracy_tflm``,
      ``tflm_litert_agreement`` (argmax), ``tflm_litert_max_step_diff`` (largest output
      difference in int8 steps) and ``n``.

    Raises:
      TFLMUnavailableError: ``tflite-micro`` is not installed.
    """
    from tfkd.export import micro

    (in_s, in_z), _ = io_quantization(flat)
    xq = quantize_input(x, in_s, in_z)
    lite = LiteRTRunner(flat).run_int8(xq)
    tflm = micro.TFLMRunner(flat).run_int8(xq)
    steps = int(np.max(np.abs(lite.astype(np.int32) - tflm.astype(np.int32)))) if len(y) else 0
    pl, pt = lite.argmax(-1), tflm.argmax(-1)
    return {"accuracy_int8": float(np.mean(pl == y)), "accuracy_tflm": float(np.mean(pt == y)),
            "tflm_litert_agreement": float(np.mean(pl == pt)), "tflm_litert_max_step_diff": steps,
            "n": int(len(y))}, pt


_WEIGHT_OPS = ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D")


def tflite_weight_sparsity(flat):
    """Fraction of zero int8 weights in a converted model's kernels.

    Weights are quantized symmetrically (zero point 0), so a pruned weight stays exactly 0.

    Returns:
      ``({"<index>:<OP>": fraction}, overall)`` where ``overall`` covers the ops tfmot
      prunes (``CONV_2D``, ``FULLY_CONNECTED``; depthwise kernels are listed but not counted).
    """
    interp = _interpreter(flat)
    interp.allocate_tensors()
    per, zeros, total = {}, 0, 0
    for op in interp._get_ops_details():
        if op["op_name"] not in _WEIGHT_OPS or len(op["inputs"]) < 2:
            continue
        w = interp.get_tensor(int(op["inputs"][1]))
        per[f"{op['index']}:{op['op_name']}"] = float(np.mean(w == 0))
        if op["op_name"] != "DEPTHWISE_CONV_2D":
            zeros += int(np.sum(w == 0))
            total += w.size
    return per, (zeros / total if total else 0.0)


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
