import os
import shutil
import subprocess

import numpy as np
import pytest

from tfkd import verify
from tfkd.compress import quantize as q
from tfkd.export import carray
from tfkd.models import build


def test_c_identifier_and_resolver_names():
    assert carray.c_identifier("kws-micro v2") == "kws_micro_v2"
    assert carray.c_identifier("3d model") == "m_3d_model"
    assert carray.resolver_method("DEPTHWISE_CONV_2D") == "AddDepthwiseConv2D"
    assert carray.resolver_method("FULLY_CONNECTED") == "AddFullyConnected"
    assert carray.resolver_method("AVERAGE_POOL_2D") == "AddAveragePool2D"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_generated_c_files_compile_and_link(tmp_path):
    x = np.random.default_rng(0).uniform(0, 26, (8, 49, 40, 1)).astype(np.float32)
    flat = q.convert_int8(build("ds_cnn", (49, 40, 1), 4, channels=8, blocks=2), x)
    ops = verify.model_ops(flat)
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


