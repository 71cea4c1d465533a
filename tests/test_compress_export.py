import os
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

import tfkd
from tfkd._keras import keras
from tfkd.compress import prune, quantize as q
from tfkd.export import carray, micro
from tfkd.models import build

needs_tflm = pytest.mark.skipif(not micro.tflm_available(), reason="tflite-micro not installed")


@pytest.fixture(scope="module")
def kws_like():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 26, (48, 49, 40, 1)).astype(np.float32)
    y = (x[:, :10].mean((1, 2, 3)) > 13).astype(np.int32) + 2 * (x[:, 30:].mean((1, 2, 3)) > 13)
    return x, y


def _small_ds_cnn(channels=8, n=4):
    return build("ds_cnn", (49, 40, 1), n, channels=channels, blocks=2)


@pytest.mark.parametrize("name,params", [("ds_cnn", {"size": "s"}), ("ds_cnn_m", {}),
                                         ("tiny_conv", {}), ("resnet_teacher", {"width": 8})])
def test_every_zoo_model_converts_to_builtin_int8(kws_like, name, params):
    x, _ = kws_like
    model = build(name, (49, 40, 1), 12, **params)
    flat = q.convert_int8(model, x[:16])
    ops = q.check_int8(flat)
    assert "CONV_2D" in ops and "FULLY_CONNECTED" in ops
    (s, z), _ = q.io_quantization(flat)
    assert 0 < s and -128 <= z <= 127


def test_unknown_model_name_lists_the_zoo():
    with pytest.raises(tfkd.UnknownNameError, match="Unknown model 'ds_cnn_xl'. Available: ds_cnn,"):
        build("ds_cnn_xl", (49, 40, 1), 12)


def test_user_model_can_be_registered():
    from tfkd.models import MODELS, register

    def mine(input_shape, num_labels):
        inp = keras.Input(input_shape)
        return keras.Model(inp, keras.layers.Dense(num_labels)(keras.layers.Flatten()(inp)))

    register("test_mine", mine)
    try:
        assert build("test_mine", (4, 4, 1), 3).output_shape == (None, 3)
    finally:
        MODELS._items.pop("test_mine")


def test_unsupported_op_fails_with_its_name(kws_like):
    x, _ = kws_like
    inp = keras.Input((49, 40, 1))
    h = keras.layers.Flatten()(inp)
    h = keras.layers.Lambda(lambda t: tf.signal.rfft(t))(h)  # no int8 builtin for RFFT
    out = keras.layers.Dense(4)(keras.layers.Lambda(lambda t: tf.math.real(t))(h))
    model = keras.Model(inp, out)
    with pytest.raises(q.ConversionError, match=r"RFFT|Rfft|op"):
        q.convert_int8(model, x[:4])


def test_check_int8_refuses_float_model(kws_like):
    model = _small_ds_cnn()
    with pytest.raises(q.ConversionError, match="is float32, not int8/int32"):
        q.check_int8(q.convert_float(model))


def test_int8_helpers_read_params_and_round_trip():
    assert q.quantize_input([0.0, 1.0, 100.0, -100.0], 0.5, -3).tolist() == [-3, -1, 127, -128]
    np.testing.assert_allclose(q.dequantize_output(np.array([-128, 127], np.int8), 0.5, -3),
                               [-62.5, 65.0])


@needs_tflm
def test_litert_and_tflm_agree_and_arena_is_measured(kws_like):
    x, _ = kws_like
    model = _small_ds_cnn()
    flat = q.convert_int8(model, x)
    (s, z), _ = q.io_quantization(flat)
    xq = q.quantize_input(x, s, z)
    a = q.LiteRTRunner(flat).run_int8(xq).astype(int)
    b = micro.TFLMRunner(flat).run_int8(xq).astype(int)
    assert np.abs(a - b).max() <= 1
    arena = micro.measure_arena(flat)
    assert arena == micro._bisect_arena(flat) or abs(arena - micro._bisect_arena(flat)) <= 64
    assert micro._invokes(flat, arena) and not micro._invokes(flat, arena // 2)


def _train_fn(x, y, teacher, epochs=2):
    def train(model, callbacks):
        d = tfkd.Distiller(student=model, teacher=teacher, temperature=2.0, alpha=0.5)
        d.compile(optimizer=keras.optimizers.Adam(0.01))
        d.fit(x, y, epochs=epochs, batch_size=8, callbacks=callbacks, verbose=0)
    return train


def test_magnitude_pruning_reaches_sparsity_with_the_teacher(kws_like):
    x, y = kws_like
    student = _small_ds_cnn()
    teacher = _small_ds_cnn(channels=16)
    before = [w.copy() for w in student.get_weights()]
    pruned = prune.magnitude_prune(student, _train_fn(x, y, teacher), target_sparsity=0.5,
                                   end_step=6, frequency=1, exclude=["logits"])
    per, total = prune.kernel_sparsity(pruned)
    assert per["logits"] == 0.0
    assert all(abs(per[n] - 0.5) < 0.02 for n in per if n != "logits")
    assert "dw1" not in per  # tfmot leaves DepthwiseConv2D dense
    for a, b in zip(before, student.get_weights()):
        np.testing.assert_array_equal(a, b)  # the input model is untouched
    flat = q.convert_int8(pruned, x)
    assert len(flat) >= len(q.convert_int8(student, x))  # zeros do not shrink the flatbuffer
    per_op, overall = q.tflite_weight_sparsity(flat)
    assert 0.4 < overall < 0.55  # the zeros survive conversion (logits kept dense)
    assert any(k.endswith("DEPTHWISE_CONV_2D") and v < 0.1 for k, v in per_op.items())
    if micro.tflm_available():  # and TFLM runs it as a dense model
        (s, z), _ = q.io_quantization(flat)
        assert micro.TFLMRunner(flat).run_int8(q.quantize_input(x[:2], s, z)).shape == (2, 4)
    with pytest.raises(prune.PruneError, match="exclude: no layer named nope"):
        prune.magnitude_prune(student, _train_fn(x, y, teacher), target_sparsity=0.5,
                              end_step=2, exclude=["nope"])
    with pytest.raises(prune.PruneError, match=r"target_sparsity: must be in \[0, 1\), got 1.0"):
        prune.magnitude_prune(student, _train_fn(x, y, teacher), target_sparsity=1.0, end_step=2)


@needs_tflm
def test_channel_pruning_shrinks_flash_and_arena(kws_like):
    x, y = kws_like
    student = build("ds_cnn", (49, 40, 1), 4, channels=32, blocks=2)
    same = prune.channel_prune(student, lambda m, cb: None, ratio=0.0)
    np.testing.assert_allclose(same.predict(x, verbose=0), student.predict(x, verbose=0), atol=1e-5)
    narrow = prune.channel_prune(student, _train_fn(x, y, _small_ds_cnn(16)), ratio=0.5)
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


def test_c_identifier_and_resolver_names():
    assert carray.c_identifier("kws-micro v2") == "kws_micro_v2"
    assert carray.c_identifier("3d model") == "m_3d_model"
    assert carray.resolver_method("DEPTHWISE_CONV_2D") == "AddDepthwiseConv2D"
    assert carray.resolver_method("FULLY_CONNECTED") == "AddFullyConnected"
    assert carray.resolver_method("AVERAGE_POOL_2D") == "AddAveragePool2D"


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_generated_c_files_compile_and_link(tmp_path, kws_like):
    x, _ = kws_like
    flat = q.convert_int8(_small_ds_cnn(), x)
    ops = q.model_ops(flat)
    consts = {"InputScale": 0.1, "InputZeroPoint": -128, "TensorArenaSize": 4096,
              "FeatureKind": "microfrontend", "FeaturePcan": True}
    paths = carray.write_firmware_files(flat, str(tmp_path), "my-kws model", ["yes", "no", "up", "down"],
                                        consts, ops)
    assert os.path.basename(paths["h"]) == "my_kws_model.h"
    header = open(paths["h"]).read()
    assert "extern const unsigned char kModelData[];" in header and "#ifndef TFKD_MY_KWS_MODEL_H_" in header
    assert "alignas(16) const unsigned char kModelData[]" in open(paths["cc"]).read()
    assert open(paths["tflite"], "rb").read() == flat
    (tmp_path / "a.cc").write_text(
        '#include "my_kws_model.h"\nint size_a() { return my_kws_model::kModelDataLen; }\n')
    (tmp_path / "main.cc").write_text(
        '#include "my_kws_model.h"\n#include "my_kws_model_ops.h"\n#include <cstdio>\n'
        'int size_a();\n'
        'int main() {\n'
        '  my_kws_model::OpResolver resolver;\n'
        '  if (my_kws_model::RegisterOps(resolver) != kTfLiteOk) return 3;\n'
        '  if (resolver.registered() != my_kws_model::kOpCount) return 4;\n'
        '  if (reinterpret_cast<unsigned long>(my_kws_model::kModelData) % 16) return 5;\n'
        '  std::printf("%d %s %d\\n", size_a(), my_kws_model::kCategoryLabels[1], my_kws_model::kTensorArenaSize);\n'
        '  return size_a() == (int)my_kws_model::kModelDataLen ? 0 : 6;\n}\n')
    stub = os.path.join(os.path.dirname(__file__), "data")
    inc = tmp_path / "inc" / "tensorflow" / "lite" / "micro"
    inc.mkdir(parents=True)
    shutil.copy(os.path.join(stub, "micro_mutable_op_resolver.h"), inc)
    exe = tmp_path / "prog"
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-I", str(tmp_path), "-I", str(tmp_path / "inc"),
                    str(tmp_path / "main.cc"), str(tmp_path / "a.cc"), paths["cc"], "-o", str(exe)],
                   check=True, capture_output=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True)
    assert out.returncode == 0, out
    assert out.stdout.split() == [str(len(flat)), "no", "4096"]


@needs_tflm
def test_quantization_aware_training_keeps_pruned_zeros(kws_like):
    x, y = kws_like
    student, teacher = _small_ds_cnn(), _small_ds_cnn(channels=16)
    qat = q.quantization_aware(student, _train_fn(x, y, teacher, epochs=1))
    flat = q.convert_int8(qat, x)
    assert q.check_int8(flat) == ["CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED"]
    assert q.score_int8(flat, x, y)[0]["tflm_litert_max_step_diff"] <= 1
    pruned = prune.magnitude_prune(student, _train_fn(x, y, teacher), target_sparsity=0.5,
                                   end_step=6, frequency=1)
    kept = q.convert_int8(q.quantization_aware(pruned, _train_fn(x, y, teacher, epochs=1),
                                               preserve_sparsity=True), x)
    assert q.tflite_weight_sparsity(kept)[1] > 0.45
