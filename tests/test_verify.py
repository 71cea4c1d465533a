import numpy as np
import pytest

from tfkd import keras, verify
from tfkd.export import micro
from tfkd.compress import quantize as q
from tfkd.config import BudgetConfig

needs_tflm = pytest.mark.skipif(not micro.tflm_available(), reason="tflite-micro not installed")


@pytest.fixture(scope="module")
def converted():
    """A tiny conv model, its int8 and float conversions, and labelled inputs."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 1))
    h = keras.layers.ReLU()(keras.layers.Conv2D(4, 3, padding="same")(inp))
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h)))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 6, 6, 1)).astype(np.float32)
    y = model.predict(x, verbose=0).argmax(-1)
    return model, q.convert_int8(model, x), q.convert_float(model), x, y


def test_check_int8_lists_ops_and_refuses_a_float_model(converted):
    model, flat, float_flat, _, _ = converted
    assert verify.check_int8(flat) == micro.model_ops(flat) == ["CONV_2D", "MEAN", "FULLY_CONNECTED"]
    with pytest.raises(verify.ConversionError, match=r"tensor '.+' is float32, not int8/int32"):
        verify.check_int8(float_flat)


def test_int8_helpers_round_and_saturate_like_tflite():
    assert micro.quantize_input([0.0, 1.0, 100.0, -100.0, 0.25], 0.5, -3).tolist() == [-3, -1, 127, -128, -3]
    np.testing.assert_allclose(micro.dequantize_output(np.array([-128, 127], np.int8), 0.5, -3),
                               [-62.5, 65.0])  # int32 first: in int8, 127 - (-3) would wrap


def test_litert_runs_the_float_model_like_keras(converted):
    model, _, float_flat, x, _ = converted
    np.testing.assert_allclose(micro.LiteRTRunner(float_flat).run_float(x), model.predict(x, verbose=0),
                               atol=1e-5)
    diff, scale = verify.float_max_abs_diff(float_flat, model, x)
    assert diff < 1e-5 and scale >= 1.0


@needs_tflm
def test_tflm_and_litert_agree_and_arena_is_the_smallest_that_works(converted):
    _, flat, _, x, _ = converted
    (s, z), _ = micro.io_quantization(flat)
    xq = micro.quantize_input(x, s, z)
    a = micro.LiteRTRunner(flat).run_int8(xq).astype(int)
    b = micro.TFLMRunner(flat).run_int8(xq).astype(int)
    assert np.abs(a - b).max() <= 1
    smallest = micro.smallest_arena(flat)  # bisection to 16 bytes
    assert micro.arena_invokes(flat, smallest) and not micro.arena_invokes(flat, smallest - 16)
    # TFLM's own allocation report leaves out part of what a tiny model needs (1664 vs 2144
    # bytes here), which is why export adds export.arena_margin on top of it.
    assert 0 < micro.measure_arena(flat) <= smallest


@needs_tflm
def test_report_gates_name_the_value_and_the_bound(converted):
    model, flat, float_flat, x, y = converted
    report = verify.verify_int8(flat, model, x, y, float_flat=float_flat, max_step_diff=1,
                                min_agreement=0.9)
    assert report.failures == () and report.raise_for_failures() is report
    m = report.metrics
    assert m["accuracy_float"] == 1.0  # y is the float model's own argmax
    assert m["n"] == 24 and m["ops"] == ["CONV_2D", "MEAN", "FULLY_CONNECTED"]
    assert m["int8_float_agreement"] == pytest.approx(np.mean(report.predictions == y))
    assert [g.key for g in report.gates] == ["float check", "quantize.max_step_diff",
                                             "quantize.min_agreement"]
    strict = verify.verify_int8(flat, model, x, y, float_flat=float_flat, max_step_diff=-1,
                                min_agreement=0.9)
    with pytest.raises(verify.VerificationError,
                       match=r"^quantize.max_step_diff -1 broken: measured \d+ \(TFLM vs LiteRT"):
        strict.raise_for_failures()


@needs_tflm
def test_float_check_catches_a_conversion_of_another_model(converted):
    model, flat, _, x, y = converted
    other = keras.models.clone_model(model)  # fresh weights: not the model converted
    report = verify.verify_int8(flat, other, x, y, float_flat=q.convert_float(model), max_step_diff=1,
                                min_agreement=0.0)
    assert [g.key for g in report.failures] == ["float check"]
    with pytest.raises(verify.VerificationError, match=r"^float check [\d.e-]+ broken: measured"):
        report.raise_for_failures()


@pytest.mark.parametrize("budgets,failed", [
    (dict(max_flash_bytes=1000), []),
    (dict(max_flash_bytes=999), ["budgets.max_flash_bytes 999 broken: measured 1000 (.tflite bytes)"]),
    (dict(max_arena_bytes=4096, min_int8_accuracy=0.9), []),
    (dict(min_int8_accuracy=0.91), ["budgets.min_int8_accuracy 0.91 broken: measured 0.9 "
                                    "(TFLM int8 test accuracy)"]),
    (dict(max_int8_drop=0.05), ["budgets.max_int8_drop 0.05 broken: measured 0.06 "
                                "(float minus TFLM int8 test accuracy)"]),
])
def test_budget_gates_on_both_sides_of_each_bound(budgets, failed):
    metrics = {"quantize": {"accuracy_tflm": 0.9, "accuracy_float": 0.96},
               "export": {"tflite_bytes": 1000, "arena_bytes": 4096}}
    gates = verify.budget_gates(BudgetConfig(**budgets), metrics)
    assert len(gates) == len(budgets)
    assert [g.message for g in gates if not g.passed] == failed


def test_unset_budgets_and_missing_metrics_make_no_gate():
    assert verify.budget_gates(BudgetConfig(max_flash_bytes=10), {}) == ()
    assert verify.budget_gates(BudgetConfig(), {"export": {"tflite_bytes": 1}}) == ()
