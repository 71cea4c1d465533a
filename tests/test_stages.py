import types

import numpy as np
import pytest

from tfkd import keras, verify
from tfkd.export import micro
from tfkd.compress import quantize as q
from tfkd.config import DistillConfig, ExportConfig, PruneConfig, QuantizeConfig
from tfkd.pipeline import stages

needs_tflm = pytest.mark.skipif(not micro.tflm_available(), reason="tflite-micro not installed")
CTX = stages.Context(seed=0, echo=lambda *_: None)


def _cfg(**quantize):
    return types.SimpleNamespace(quantize=QuantizeConfig(representative_samples=16, min_agreement=0.0,
                                                         **quantize),
                                 distill=DistillConfig(batch_size=16), prune=PruneConfig(),
                                 export=ExportConfig(golden_vectors=2), name="tiny model")


def _negated(model):
    """The model with its logits negated: argmax becomes argmin."""
    other = keras.models.clone_model(model)
    w = model.get_weights()
    other.set_weights(w[:-2] + [-w[-2], -w[-1]])
    return other


@pytest.mark.slow
@needs_tflm
def test_qat_checks_and_scores_the_model_it_converts(tiny_data, make_cnn, monkeypatch):
    """With qat_epochs > 0 the int8 model comes from the QAT model, so the float check and
    accuracy_float must use it too, not the student QAT started from (issue 11)."""
    real, made = q.quantization_aware, []

    def qat_that_changes_the_model(model, train, **kw):
        made.append(real(_negated(model), lambda m, cb: None, **kw))  # stands in for QAT's training
        return made[-1]

    monkeypatch.setattr(q, "quantization_aware", qat_that_changes_the_model)
    keras.utils.set_random_seed(0)
    student = make_cnn()
    product, m = stages.quantize(_cfg(qat_epochs=1), CTX, data=tiny_data, student=student, teacher=None)
    x, y = tiny_data.arrays("test")
    qat_pred = made[0].predict(x, verbose=0).argmax(-1)
    assert np.mean(qat_pred == student.predict(x, verbose=0).argmax(-1)) < 0.5  # really another model
    assert m["qat"] is True and m["accuracy_float"] == pytest.approx(np.mean(qat_pred == y))
    assert m["accuracy_float"] == m["accuracy_qat_float"]
    assert m["int8_float_agreement"] >= 0.9  # against the pre-QAT student it would be ~0
    assert m["float_tflite_max_abs_diff"] < 1e-3
    assert product.verification["accuracy_float"] == m["accuracy_float"]


@needs_tflm
def test_quantize_then_export(tiny_data, make_cnn):
    product, m = stages.quantize(_cfg(), CTX, data=tiny_data, student=make_cnn(), teacher=None)
    assert m["qat"] is False and "accuracy_qat_float" not in m
    assert [g["key"] for g in product.verification["gates"]] == [
        "float check", "quantize.max_step_diff", "quantize.min_agreement"]
    assert verify.check_int8(product.flat) == m["ops"]
    fw, e = stages.export(_cfg(), CTX, data=tiny_data, quantized=product)
    assert {"tiny_model.cc", "tiny_model.h", "tiny_model.tflite", "tiny_model_golden.h",
            "tiny_model_ops.h"} <= set(fw.files)
    assert fw.files["tiny_model.tflite"] == product.flat
    assert e["files"] == fw.kinds and e["tflite_bytes"] == len(product.flat)
    assert e["arena_bytes"] == e["arena_bytes_host"] + e["arena_margin_bytes"]
    assert e["arena_margin_bytes"] % 16 == 0 and e["arena_margin_bytes"] >= 0.25 * e["arena_bytes_host"]


@needs_tflm
def test_a_broken_gate_stops_the_stage(tiny_data, make_cnn):
    cfg = _cfg()
    cfg.quantize = types.SimpleNamespace(representative_samples=16, qat_epochs=0, min_agreement=0.0,
                                         max_step_diff=-1)  # a bound no model meets
    with pytest.raises(verify.VerificationError, match=r"^quantize.max_step_diff -1 broken: measured \d+ "):
        stages.quantize(cfg, CTX, data=tiny_data, student=make_cnn(), teacher=None)
