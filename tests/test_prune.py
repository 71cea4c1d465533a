import numpy as np
import pytest

from tfkd import verify
from tfkd.export import micro
from tfkd.compress import prune, quantize as q
from tfkd.models import build

needs_tflm = pytest.mark.skipif(not micro.tflm_available(), reason="tflite-micro not installed")


@pytest.mark.slow
def test_magnitude_pruning_reaches_sparsity_with_the_teacher(kws_like, small_ds_cnn, teach):
    x, y = kws_like
    student = small_ds_cnn()
    teacher = small_ds_cnn(channels=16)
    before = [w.copy() for w in student.get_weights()]
    pruned = prune.magnitude_prune(student, teach(x, y, teacher), target_sparsity=0.5,
                                   end_step=6, frequency=1, exclude=["logits"])
    per, total = prune.kernel_sparsity(pruned)
    assert per["logits"] == 0.0
    assert all(abs(per[n] - 0.5) < 0.02 for n in per if n != "logits")
    assert "dw1" not in per  # tfmot leaves DepthwiseConv2D dense
    for a, b in zip(before, student.get_weights()):
        np.testing.assert_array_equal(a, b)  # the input model is untouched
    flat = q.convert_int8(pruned, x)
    assert len(flat) >= len(q.convert_int8(student, x))  # zeros do not shrink the flatbuffer
    per_op, overall = verify.tflite_weight_sparsity(flat)
    assert 0.4 < overall < 0.55  # the zeros survive conversion (logits kept dense)
    assert any(k.endswith("DEPTHWISE_CONV_2D") and v < 0.1 for k, v in per_op.items())
    if micro.tflm_available():  # and TFLM runs it as a dense model
        (s, z), _ = micro.io_quantization(flat)
        assert micro.TFLMRunner(flat).run_int8(micro.quantize_input(x[:2], s, z)).shape == (2, 4)
    with pytest.raises(prune.PruneError, match="exclude: no layer named nope"):
        prune.magnitude_prune(student, teach(x, y, teacher), target_sparsity=0.5,
                              end_step=2, exclude=["nope"])
    with pytest.raises(prune.PruneError, match=r"target_sparsity: must be in \[0, 1\), got 1.0"):
        prune.magnitude_prune(student, teach(x, y, teacher), target_sparsity=1.0, end_step=2)


@pytest.mark.slow
@needs_tflm
def test_channel_pruning_shrinks_flash_and_arena(kws_like, small_ds_cnn, teach):
    x, y = kws_like
    student = build("ds_cnn", (49, 40, 1), 4, channels=32, blocks=2)
    same = prune.channel_prune(student, lambda m, cb: None, ratio=0.0)
    np.testing.assert_allclose(same.predict(x, verbose=0), student.predict(x, verbose=0), atol=1e-5)
    narrow = prune.channel_prune(student, teach(x, y, small_ds_cnn(16)), ratio=0.5)
    assert narrow.get_layer("pw1").filters == 16 and narrow.get_layer("logits").units == 4
    f_full, f_narrow = q.convert_int8(student, x), q.convert_int8(narrow, x)
    assert len(f_narrow) < 0.8 * len(f_full)
    assert micro.measure_arena(f_narrow) < micro.measure_arena(f_full)
    resnet = build("resnet_teacher", (49, 40, 1), 4, width=8)
    with pytest.raises(prune.PruneError, match="chain models only"):
        prune.channel_prune(resnet, lambda m, cb: None, ratio=0.5)


def test_channel_pruning_through_flatten(kws_like):
    x, y = kws_like
    model = build("tiny_conv", (49, 40, 1), 4, filters=8)
    same = prune.channel_prune(model, lambda m, cb: None, ratio=0.0, multiple=1)
    np.testing.assert_allclose(same.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    half = prune.channel_prune(model, lambda m, cb: None, ratio=0.5, multiple=1)
    assert half.get_layer("conv0").filters == 4


