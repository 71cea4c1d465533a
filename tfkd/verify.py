"""Every check of a converted model, and the gates that turn checks into pass or fail.

The all-int8 check, the float-vs-Keras check, scoring on a labelled set in LiteRT and
TFLite Micro (the runtimes are :mod:`tfkd.export.micro`), and the gates
(``quantize.max_step_diff``, ``quantize.min_agreement``, the float tolerance and the
``budgets``, whose one table is :data:`BUDGETS`). :func:`verify_int8` returns one
:class:`Report`; each :class:`Gate` in it names the measured value and its bound.
"""

import dataclasses
import typing

import numpy as np

from tfkd.export import micro

__all__ = ["ConversionError", "VerificationError", "BudgetError", "check_int8", "score_int8",
           "tflite_weight_sparsity", "float_max_abs_diff", "Gate", "Report", "verify_int8",
           "BudgetRule", "BUDGETS", "budget_gates", "check_budgets"]

_INT_TYPES = (np.int8, np.int32)
_WEIGHT_OPS = ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D")


class ConversionError(RuntimeError):
    """The model cannot be converted to (or is not) a pure built-in int8 model."""


class VerificationError(RuntimeError):
    """A converted model that disagrees with its source beyond the allowed bounds."""


class BudgetError(RuntimeError):
    """A budget limit that the run broke; the message names the limit and the value."""


def check_int8(flat):
    """Checks that a model is pure built-in int8: int8/int32 tensors, built-in ops.

    Returns:
      The op names (see :func:`model_ops`).

    Raises:
      ConversionError: naming the first float tensor or non-built-in op.
    """
    try:
        interp = micro.interpreter(flat)
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


def tflite_weight_sparsity(flat):
    """Fraction of zero int8 weights in a converted model's kernels.

    Weights are quantized symmetrically (zero point 0), so a pruned weight stays exactly 0.

    Returns:
      ``({"<index>:<OP>": fraction}, overall)`` where ``overall`` covers the ops tfmot
      prunes (``CONV_2D``, ``FULLY_CONNECTED``; depthwise kernels are listed but not counted).
    """
    interp = micro.interpreter(flat)
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
      tfkd.export.micro.TFLMUnavailableError: ``tflite-micro`` is not installed.
    """
    (in_s, in_z), _ = micro.io_quantization(flat)
    xq = micro.quantize_input(x, in_s, in_z)
    lite = micro.LiteRTRunner(flat).run_int8(xq)
    tflm = micro.TFLMRunner(flat).run_int8(xq)
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
    lite_out = micro.LiteRTRunner(float_flat).run_float(x)
    return float(np.max(np.abs(keras_out - lite_out))), max(1.0, float(np.max(np.abs(keras_out))))


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
      tfkd.export.micro.TFLMUnavailableError: ``tflite-micro`` is not installed.
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
               "weight_sparsity_per_op": per_op, "arena_bytes_host": int(micro.measure_arena(flat))}
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


# -- budgets: the one table ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True, kw_only=True)
class BudgetRule:
    """How one ``budgets`` setting is checked against a run's metrics."""

    key: str
    """The :class:`tfkd.config.BudgetConfig` field (``max_flash_bytes``, ...)."""
    needs: tuple
    """The ``(stage, metric)`` pairs the measured value is computed from."""
    upper: bool
    """True: the value must be <= the bound; False: >= the bound."""
    what: str
    """What is measured, in words."""
    measure: typing.Callable = lambda value: value
    """The measured value from the ``needs`` values, in their order."""


#: Every budget, once: what it reads, which way it bounds and what it says.
BUDGETS = (
    BudgetRule(key="max_flash_bytes", needs=(("export", "tflite_bytes"),), upper=True,
               what=".tflite bytes"),
    BudgetRule(key="max_arena_bytes", needs=(("export", "arena_bytes"),), upper=True,
               what="arena bytes with margin"),
    BudgetRule(key="min_int8_accuracy", needs=(("quantize", "accuracy_tflm"),), upper=False,
               what="TFLM int8 test accuracy"),
    BudgetRule(key="max_int8_drop", needs=(("quantize", "accuracy_tflm"), ("quantize", "accuracy_float")),
               upper=True, what="float minus TFLM int8 test accuracy",
               measure=lambda tflm, float_: float_ - tflm),
)


def _needed(rule, metrics):
    return [(metrics.get(stage) or {}).get(metric) for stage, metric in rule.needs]


def budget_gates(budgets, metrics):
    """The gates of a run's ``budgets`` that apply to its metrics (unset budgets, and
    those whose values are missing, are skipped).

    Args:
      budgets: a :class:`tfkd.config.BudgetConfig`.
      metrics: the run's metrics (``quantize`` and ``export`` sections).

    Returns:
      A tuple of :class:`Gate`, in :data:`BUDGETS` order.
    """
    gates = []
    for rule in BUDGETS:
        bound, values = getattr(budgets, rule.key), _needed(rule, metrics)
        if bound is not None and None not in values:
            gates.append(Gate(key=f"budgets.{rule.key}", measured=rule.measure(*values),
                              bound=bound, upper=rule.upper, what=rule.what))
    return tuple(gates)


def check_budgets(budgets, metrics):
    """Raises :class:`BudgetError` naming the first budget the metrics break or cannot show.

    A budget whose measured value is missing fails: a run that cannot show it kept a
    limit has not kept it.

    Args:
      budgets: a :class:`tfkd.config.BudgetConfig`.
      metrics: the run's metrics.

    Raises:
      BudgetError: the first set budget that is not measured, else the first broken one.
    """
    for rule in BUDGETS:
        bound = getattr(budgets, rule.key)
        for (stage, metric), value in zip(rule.needs, _needed(rule, metrics)):
            if bound is not None and value is None:
                raise BudgetError(f"budgets.{rule.key} {bound}: not measured ({stage}.{metric} is "
                                  "missing from the run's metrics)")
    for gate in budget_gates(budgets, metrics):
        if not gate.passed:
            raise BudgetError(gate.message)
