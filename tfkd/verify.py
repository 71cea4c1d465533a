"""Every check of a converted model, and the gates that turn checks into pass or fail.

The LiteRT and TFLite Micro runners, the all-int8 check, the float-vs-Keras check, scoring
on a labelled set, the host arena, and the gates (``quantize.max_step_diff``,
``quantize.min_agreement``, the float tolerance and the ``budgets``). :func:`verify_int8`
returns one :class:`Report`; each :class:`Gate` in it names the measured value and its bound.

TFLite Micro figures are host figures (x86-64, TFLM's reference kernels, 64-bit pointers);
a target build differs (32-bit pointers, CMSIS-NN scratch buffers), hence the export's
configurable arena margin.
"""

import contextlib
import ctypes
import dataclasses
import os
import re
import sys
import tempfile
import typing

import numpy as np

from tfkd.schema import require

__all__ = ["BudgetConfig", "ConversionError", "VerificationError", "BudgetError", "TFLMUnavailableError",
           "tflm_available", "check_int8", "model_ops", "io_quantization", "quantize_input",
           "dequantize_output", "LiteRTRunner", "TFLMRunner", "measure_arena", "smallest_arena",
           "arena_invokes", "score_int8", "tflite_weight_sparsity", "float_max_abs_diff", "Gate",
           "Report", "verify_int8", "budget_gates"]

_INT_TYPES = (np.int8, np.int32)
_WEIGHT_OPS = ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D")


class ConversionError(RuntimeError):
    """The model cannot be converted to (or is not) a pure built-in int8 model."""


class VerificationError(RuntimeError):
    """A converted model that disagrees with its source beyond the allowed bounds."""


class BudgetError(RuntimeError):
    """A budget limit that the run broke; the message names the limit and the value."""


class TFLMUnavailableError(RuntimeError):
    """The ``tflite-micro`` Python package is not installed (Linux x86-64 wheels only)."""


# -- LiteRT -------------------------------------------------------------------------------

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
        """Raw outputs ``[N, C]`` for inputs ``[N, ...]`` of the model's own input type."""
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


# -- TFLite Micro -------------------------------------------------------------------------

def _tflm_runtime():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise TFLMUnavailableError(
            "TFLite Micro figures need the 'tflite-micro' package (Linux x86-64 wheels "
            "only): pip install tflite-micro") from None
    return runtime


def tflm_available():
    """Whether the TFLite Micro Python runtime can be imported."""
    try:
        _tflm_runtime()
    except TFLMUnavailableError:
        return False
    return True


@contextlib.contextmanager
def _capture_fds():
    """Captures what C/C++ code prints to stdout/stderr (file descriptors 1 and 2)."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(1), os.dup(2)
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        box = {}
        try:
            yield box
        finally:
            libc.fflush(None)
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            box["text"] = tmp.read().decode("utf-8", "replace")


class TFLMRunner:
    """Runs an int8 ``.tflite`` model in the TFLite Micro interpreter, one sample at a time.

    Args:
      flat: the model bytes.
      arena_size: the tensor arena in bytes (TFLM's Python default when None).

    Raises:
      TFLMUnavailableError: ``tflite-micro`` is not installed.
    """

    def __init__(self, flat, arena_size=None):
        runtime = _tflm_runtime()
        kwargs = {} if arena_size is None else {"arena_size": int(arena_size)}
        self.interp = runtime.Interpreter.from_bytes(bytes(flat), **kwargs)
        self.inp = self.interp.get_input_details(0)
        self.out = self.interp.get_output_details(0)

    def run_int8(self, x_q):
        """Raw int8 outputs ``[N, C]`` for int8 inputs ``[N, ...]``."""
        outs = []
        shape = tuple(self.inp["shape"])
        for row in np.asarray(x_q):
            self.interp.set_input(row.reshape(shape).astype(self.inp["dtype"]), 0)
            self.interp.invoke()
            outs.append(np.array(self.interp.get_output(0)).reshape(-1).copy())
        return np.stack(outs) if outs else np.zeros((0, int(np.prod(self.out["shape"][1:]))), np.int8)


def measure_arena(flat):
    """The tensor-arena bytes TFLM's allocator uses for this model (host figure).

    Read from ``print_allocations()`` (captured from the C++ side); if that report
    cannot be parsed, :func:`smallest_arena` finds it by bisection.

    Raises:
      TFLMUnavailableError: ``tflite-micro`` is not installed.
    """
    runner = TFLMRunner(flat)
    with _capture_fds() as box:
        runner.interp.print_allocations()
    m = re.search(r"Arena allocation total (\d+) bytes", box["text"])
    return int(m.group(1)) if m else smallest_arena(flat)


def arena_invokes(flat, size):
    """Whether TFLM allocates and invokes the model with an arena of ``size`` bytes."""
    try:
        with _capture_fds():
            r = TFLMRunner(flat, arena_size=size)
            r.interp.set_input(np.zeros(tuple(r.inp["shape"]), r.inp["dtype"]), 0)
            r.interp.invoke()
        return True
    except (RuntimeError, ValueError):
        return False


def smallest_arena(flat):
    """The smallest arena (to 16 bytes) that :func:`arena_invokes`, found by bisection."""
    lo, hi = 0, 1 << 14
    while not arena_invokes(flat, hi):
        lo, hi = hi, hi * 2
        if hi > 1 << 30:
            raise RuntimeError("tflm: no arena up to 1 GiB allocates this model")
    while hi - lo > 16:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if arena_invokes(flat, mid) else (mid, hi)
    return hi


# -- scores -------------------------------------------------------------------------------

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
    (in_s, in_z), _ = io_quantization(flat)
    xq = quantize_input(x, in_s, in_z)
    lite = LiteRTRunner(flat).run_int8(xq)
    tflm = TFLMRunner(flat).run_int8(xq)
    steps = int(np.max(np.abs(lite.astype(np.int32) - tflm.astype(np.int32)))) if len(y) else 0
    pl, pt = lite.argmax(-1), tflm.argmax(-1)
    return {"accuracy_int8": _mean(pl == y), "accuracy_tflm": _mean(pt == y),
            "tflm_litert_agreement": _mean(pl == pt), "tflm_litert_max_step_diff": steps,
            "n": int(len(y))}, pt


def _mean(hits):
    return float(np.mean(hits)) if len(hits) else float("nan")


def float_max_abs_diff(float_flat, reference, x):
    """Largest ``|Keras - float TFLite|`` output difference over ``x``, and the output scale.

    Args:
      float_flat: the float ``.tflite`` converted from ``reference``.
      reference: the Keras model that was converted.
      x: float inputs ``[N, ...]``.

    Returns:
      ``(max_abs_diff, max(1, max |reference output|))``.
    """
    if not len(x):
        return 0.0, 1.0
    from tfkd._keras import predict

    keras_out = predict(reference, x)
    lite_out = LiteRTRunner(float_flat).run_float(x)
    return float(np.max(np.abs(keras_out - lite_out))), max(1.0, float(np.max(np.abs(keras_out))))


# -- budgets: the config section of the run's own bounds --------------------------------

@dataclasses.dataclass(frozen=True, kw_only=True)
class BudgetConfig:
    """Optional limits; a run that breaks one exits 1."""

    max_flash_bytes: typing.Optional[int] = None
    """Largest ``.tflite`` size."""
    max_arena_bytes: typing.Optional[int] = None
    """Largest arena (with margin)."""
    min_int8_accuracy: typing.Optional[float] = None
    """Smallest TFLM int8 test accuracy."""
    max_int8_drop: typing.Optional[float] = None
    """Largest drop from the float student's to the TFLM int8 accuracy."""

    def __post_init__(self):
        for k in ("max_flash_bytes", "max_arena_bytes"):
            v = getattr(self, k)
            require(v is None or v > 0, k, "must be > 0 or null", v)
        for k in ("min_int8_accuracy", "max_int8_drop"):
            v = getattr(self, k)
            require(v is None or 0 <= v <= 1, k, "must be in [0, 1] or null", v)



# -- gates and the report -----------------------------------------------------------------

@dataclasses.dataclass(frozen=True, kw_only=True)
class Gate:
    """One pass/fail check of a measured value against its bound."""

    key: str
    """The setting that holds the bound (``quantize.max_step_diff``, ``budgets.…``)."""
    measured: float
    """The measured value."""
    bound: float
    """The bound it is checked against."""
    upper: bool
    """True: the value must be <= the bound; False: >= the bound."""
    what: str = ""
    """What was measured, in words."""

    @property
    def passed(self):
        """Whether the measured value is within its bound."""
        return self.measured <= self.bound if self.upper else self.measured >= self.bound

    @property
    def message(self):
        """``<key> <bound> broken: measured <value> (<what>)``."""
        tail = f" ({self.what})" if self.what else ""
        return f"{self.key} {self.bound:g} broken: measured {self.measured:.6g}{tail}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Report:
    """What :func:`verify_int8` measured and which gates passed."""

    metrics: dict
    """The measured values (the quantize stage's metrics)."""
    gates: tuple
    """Every :class:`Gate` checked."""
    predictions: np.ndarray
    """TFLite Micro's argmax per test clip."""

    @property
    def failures(self):
        """The gates that did not pass."""
        return tuple(g for g in self.gates if not g.passed)

    def raise_for_failures(self, error=VerificationError):
        """Raises ``error`` naming the first failed gate's value and bound."""
        if self.failures:
            raise error(self.failures[0].message)
        return self


def verify_int8(flat, reference, x, y, *, float_flat, max_step_diff, min_agreement,
                float_tolerance=1e-3, probe=16):
    """Verifies an int8 model against the Keras model it was converted from.

    Checks that it is all int8 with built-in ops, that the float conversion of
    ``reference`` matches Keras (within ``float_tolerance`` of the output scale), and
    scores the int8 model in LiteRT and TFLite Micro on ``(x, y)``.

    Args:
      flat: the int8 ``.tflite``.
      reference: the Keras model that was converted (the QAT model after QAT).
      x, y: float test features and labels.
      float_flat: the float ``.tflite`` of ``reference``.
      max_step_diff: largest allowed TFLM-vs-LiteRT output difference in int8 steps.
      min_agreement: smallest allowed TFLM/LiteRT argmax agreement.
      float_tolerance: largest float-TFLite-vs-Keras difference, relative to the outputs.
      probe: test clips used for the float check.

    Returns:
      A :class:`Report` (call :meth:`Report.raise_for_failures` to enforce the gates).

    Raises:
      ConversionError: the model is not pure built-in int8.
      TFLMUnavailableError: ``tflite-micro`` is not installed.
    """
    ops = check_int8(flat)
    diff, scale = float_max_abs_diff(float_flat, reference, x[:probe])
    scores, pred = score_int8(flat, x, y)
    from tfkd._keras import predict

    float_pred = predict(reference, x).argmax(-1) if len(y) else np.zeros(0, int)
    per_op, sparsity = tflite_weight_sparsity(flat)
    metrics = {**scores, "accuracy_float": _mean(float_pred == y),
               "int8_float_agreement": _mean(float_pred == pred),
               "float_tflite_max_abs_diff": diff, "ops": ops, "weight_sparsity": sparsity,
               "weight_sparsity_per_op": per_op, "arena_bytes_host": int(measure_arena(flat))}
    gates = (
        Gate(key="float check", measured=diff, bound=float_tolerance * scale, upper=True,
             what="float TFLite vs Keras, largest output difference"),
        Gate(key="quantize.max_step_diff", measured=scores["tflm_litert_max_step_diff"],
             bound=max_step_diff, upper=True, what="TFLM vs LiteRT, largest output difference "
             "in int8 steps"),
        Gate(key="quantize.min_agreement", measured=scores["tflm_litert_agreement"],
             bound=min_agreement, upper=False, what="TFLM/LiteRT argmax agreement"),
    )
    return Report(metrics=metrics, gates=gates, predictions=pred)


def budget_gates(budgets, metrics):
    """The gates of a run's ``budgets`` that apply to its metrics (unset budgets are skipped).

    Args:
      budgets: a :class:`tfkd.config.BudgetConfig`.
      metrics: the run's metrics (``quantize`` and ``export`` sections).

    Returns:
      A tuple of :class:`Gate`.
    """
    q, e = metrics.get("quantize", {}), metrics.get("export", {})
    drop = None if q.get("accuracy_tflm") is None or q.get("accuracy_float") is None \
        else q["accuracy_float"] - q["accuracy_tflm"]
    checks = (("max_flash_bytes", e.get("tflite_bytes"), True, ".tflite bytes"),
              ("max_arena_bytes", e.get("arena_bytes"), True, "arena bytes with margin"),
              ("min_int8_accuracy", q.get("accuracy_tflm"), False, "TFLM int8 test accuracy"),
              ("max_int8_drop", drop, True, "float minus TFLM int8 test accuracy"))
    return tuple(Gate(key=f"budgets.{k}", measured=v, bound=getattr(budgets, k), upper=up, what=w)
                 for k, v, up, w in checks if getattr(budgets, k) is not None and v is not None)
