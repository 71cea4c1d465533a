import numpy as np
import pytest
import tensorflow as tf

from tfkd import keras, verify
from tfkd.export import micro
from tfkd.compress import prune, quantize as q
from tfkd.models import build

needs_tflm = pytest.mark.skipif(not micro.tflm_available(), reason="tflite-micro not installed")


@pytest.mark.slow
@pytest.mark.parametrize("name,params", [("ds_cnn", {"size": "s"}), ("ds_cnn_m", {}),
                                         ("tiny_conv", {}), ("resnet_teacher", {"width": 8})])
def test_every_zoo_model_converts_to_builtin_int8(kws_like, name, params):
    x, _ = kws_like
    model = build(name, (49, 40, 1), 12, **params)
    flat = q.convert_int8(model, x[:16])
    ops = verify.check_int8(flat)
    assert "CONV_2D" in ops and "FULLY_CONNECTED" in ops
    (s, z), _ = micro.io_quantization(flat)
    assert 0 < s and -128 <= z <= 127


def test_an_op_without_int8_kernel_stays_float_and_is_refused():
    """RFFT of a power-of-two length converts, but leaves float tensors behind."""
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Lambda(lambda t: tf.signal.rfft(t))(keras.layers.Flatten()(inp))
    model = keras.Model(inp, keras.layers.Dense(4)(keras.layers.Lambda(tf.math.real)(h)))
    x = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 1)).astype(np.float32)
    with pytest.raises(q.ConversionError, match=r"^quantize: tensor '.*rfft.*' is float32, not int8/int32$"):
        q.convert_int8(model, x)


def test_an_op_that_fails_calibration_is_named():
    """RFFT of 1960 points has no kernel at all (TFLite's RFFT2D needs a power of two)."""
    inp = keras.Input((49, 40, 1))
    h = keras.layers.Lambda(lambda t: tf.signal.rfft(t))(keras.layers.Flatten()(inp))
    model = keras.Model(inp, keras.layers.Dense(4)(keras.layers.Lambda(tf.math.real)(h)))
    x = np.random.default_rng(0).uniform(0, 26, (4, 49, 40, 1)).astype(np.float32)
    with pytest.raises(q.ConversionError,
                       match=r"^quantize: op\(s\) RFFT2D cannot be converted to built-in int8 TFLite"):
        q.convert_int8(model, x)


def test_an_empty_representative_set_is_refused(small_ds_cnn):
    with pytest.raises(q.ConversionError, match="quantize: the representative set is empty"):
        q.convert_int8(small_ds_cnn(), np.zeros((0, 49, 40, 1), np.float32))


@pytest.mark.slow
@needs_tflm
def test_quantization_aware_training_keeps_pruned_zeros(kws_like, small_ds_cnn, teach):
    x, y = kws_like
    student, teacher = small_ds_cnn(), small_ds_cnn(channels=16)
    qat = q.quantization_aware(student, teach(x, y, teacher, epochs=1))
    flat = q.convert_int8(qat, x)
    assert verify.check_int8(flat) == ["CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED"]
    assert verify.score_int8(flat, x, y)[0]["tflm_litert_max_step_diff"] <= 1
    pruned = prune.magnitude_prune(student, teach(x, y, teacher), target_sparsity=0.5,
                                   end_step=6, frequency=1)
    kept = q.convert_int8(q.quantization_aware(pruned, teach(x, y, teacher, epochs=1),
                                               preserve_sparsity=True), x)
    assert verify.tflite_weight_sparsity(kept)[1] > 0.45
