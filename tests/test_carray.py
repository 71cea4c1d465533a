"""The firmware writer: resolver names from TFLM's table, C escaping, guards, int8 helpers,
and C++17 that compiles warning-free against the TFLM stand-in headers (tests/data/tflm)."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from tfkd.export import carray

TFLM_STANDIN = os.path.join(os.path.dirname(__file__), "data", "tflm")
GXX = ["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"]
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")

OPS = ["CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"]
CONSTANTS = {"InputScale": 0.1018688753247261, "InputZeroPoint": -128,
             "OutputScale": 0.00390625, "OutputZeroPoint": -128,
             "FeatureKind": "microfrontend", "FeatureScale": 0.0390625,
             "FeatureFrames": 49, "FeatureChannels": 40, "TensorArenaSize": 4096,
             "FeaturePcan": True}


def _write(tmp_path, name="kws model", labels=("yes", "no"), ops=OPS, constants=CONSTANTS):
    flat = bytes(range(256)) * 3
    return carray.write_firmware_files(flat, str(tmp_path), name, list(labels), dict(constants),
                                       list(ops))


def _compile(tmp_path, *sources, link=False, out="prog"):
    cmd = GXX + ["-I", str(tmp_path), "-I", TFLM_STANDIN]
    cmd += [str(s) for s in sources] + (["-o", str(tmp_path / out)] if link else ["-c"])
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)


def test_c_identifier_and_resolver_names():
    assert carray.c_identifier("kws-micro v2") == "kws_micro_v2"
    assert carray.c_identifier("3d model") == "m_3d_model"
    assert carray.resolver_method("FULLY_CONNECTED") == "AddFullyConnected"
    assert carray.resolver_method("AVERAGE_POOL_2D") == "AddAveragePool2D"


def test_resolver_names_come_from_tflms_header():
    # The four that CamelCase got wrong, checked against TFLM's micro_mutable_op_resolver.h.
    assert carray.resolver_method("UNIDIRECTIONAL_SEQUENCE_LSTM") == "AddUnidirectionalSequenceLSTM"
    assert carray.resolver_method("BATCH_MATMUL") == "AddBatchMatMul"
    assert carray.resolver_method("PADV2") == "AddPadV2"
    assert carray.resolver_method("CUMSUM") == "AddCumSum"
    assert carray.resolver_method("DEPTHWISE_CONV_2D") == "AddDepthwiseConv2D"
    assert carray.resolver_method("L2_POOL_2D") == "AddL2Pool2D"
    table = carray.resolver_table()
    assert len(table) == len(set(table.values()))
    assert all(re.fullmatch(r"Add[A-Z][A-Za-z0-9]*", m) for m in table.values())


def test_an_op_tflm_lacks_fails_by_name_and_writes_nothing(tmp_path):
    with pytest.raises(carray.UnsupportedOpError, match=r"^op TILE is not supported by "
                                                         r"TensorFlow Lite Micro"):
        _write(tmp_path, ops=["CONV_2D", "TILE"])
    assert os.listdir(tmp_path) == []


def test_names_become_identifiers_and_keywords_are_refused():
    assert carray.c_identifier("kws-micro v2") == "kws_micro_v2"
    assert carray.c_identifier("3d model") == "m_3d_model"
    assert carray.c_identifier("a--b") == "a_b"  # no reserved "__"
    for bad in ("class", "int", "namespace", "std", "tflite", "main"):
        with pytest.raises(ValueError, match=f"export.name: '{bad}'"):
            carray.c_identifier(bad)


def test_guards_differ_for_names_differing_only_in_case(tmp_path):
    guards = set()
    for i, name in enumerate(["model", "Model", "MODEL", "mODEL"]):
        folder = tmp_path / str(i)
        paths = _write(folder, name=name)
        for kind in ("h", "ops"):
            guards.add(re.search(r"#ifndef (\w+)", open(paths[kind]).read()).group(1))
        guards.add(re.search(r"#ifndef (\w+)",
                             carray.render_golden(name, np.zeros((1, 2)), np.zeros((1, 2)))).group(1))
    assert len(guards) == 12
    assert "TFKD_MODEL_H_" in guards  # an all-lowercase name keeps the plain guard


def test_c_strings_escape_newlines_quotes_backslashes_and_trigraphs():
    assert carray.c_string('a"b') == r'"a\"b"'
    assert carray.c_string("a\\b") == r'"a\\b"'
    assert carray.c_string("no\n#define X 1") == r'"no\012#define X 1"'
    assert carray.c_string("what??=") == r'"what\?\?="'
    assert carray.c_string("ja\u00e4") == r'"ja\303\244"'
    with pytest.raises(ValueError, match="NUL"):
        carray.c_string("a\0b", "label")


@needs_gxx
def test_hostile_labels_compile_and_read_back_exactly(tmp_path):
    labels = ["yes", "no\n#error injected", 'say "hi"', "back\\slash", "??=??/??'", "\u00e4\u00f6"]
    paths = _write(tmp_path, labels=labels)
    (tmp_path / "print.cc").write_text(
        '#include <cstdio>\n#include "kws_model.h"\n'
        "int main() {\n  for (int i = 0; i < kws_model::kCategoryCount; ++i)\n"
        '    std::printf("%s|", kws_model::kCategoryLabels[i]);\n  return 0;\n}\n')
    res = _compile(tmp_path, tmp_path / "print.cc", paths["cc"], link=True)
    assert res.returncode == 0, res.stderr
    out = subprocess.run([str(tmp_path / "prog")], capture_output=True).stdout.decode("utf-8")
    assert out == "|".join(labels) + "|"


@needs_gxx
def test_feature_to_int8_saturates_and_matches_tflite_rounding(tmp_path):
    paths = _write(tmp_path)
    values = [0, 1, 13, 100, 500, 667, 668, 1000, 5000, 65535]
    (tmp_path / "q.cc").write_text(
        '#include <cstdio>\n#include "kws_model.h"\n'
        "int main() {\n"
        f"  const unsigned short v[] = {{{', '.join(map(str, values))}}};\n"
        "  for (unsigned short x : v) std::printf(\"%d \", kws_model::FeatureToInt8(x));\n"
        "  std::printf(\"%.6f\", kws_model::DequantizeOutput(-128));\n  return 0;\n}\n")
    res = _compile(tmp_path, tmp_path / "q.cc", paths["cc"], link=True)
    assert res.returncode == 0, res.stderr
    got = subprocess.run([str(tmp_path / "prog")], capture_output=True, text=True).stdout.split()
    # NumPy reference, as tfkd.export.micro.quantize_input computes it (float32, half to even).
    x = np.array(values, np.float32) * np.float32(CONSTANTS["FeatureScale"])
    ref = np.clip(np.round(x / np.float32(CONSTANTS["InputScale"])) - 128, -128, 127)
    assert [int(g) for g in got[:-1]] == ref.astype(int).tolist()
    assert int(got[values.index(65535)]) == 127  # saturates instead of wrapping
    assert float(got[-1]) == 0.0


@needs_gxx
def test_everything_compiles_warning_free_against_tflm_headers(tmp_path):
    paths = _write(tmp_path)
    xq = np.arange(-4, 4, dtype=np.int8).reshape(2, 4)
    golden = tmp_path / "kws_model_golden.h"
    golden.write_text(carray.render_golden("kws_model", xq, xq[:, :2]))
    # Two translation units include every header: inline constexpr golden data and the
    # inline helpers must not collide at link time.
    (tmp_path / "other.cc").write_text(
        '#include "kws_model.h"\n#include "kws_model_ops.h"\n#include "kws_model_golden.h"\n'
        "int Other() { return kws_model::kGoldenInputs[1][3] + kws_model::kOpCount; }\n")
    (tmp_path / "count.cc").write_text(
        '#include "kws_model.h"\n#include "kws_model_ops.h"\n#include "kws_model_golden.h"\n'
        "int Other();\n"
        "int main() {\n  kws_model::OpResolver resolver;\n"
        "  if (kws_model::RegisterOps(resolver) != kTfLiteOk) return 2;\n"
        "  if (resolver.GetRegistrationLength() != kws_model::kOpCount) return 3;\n"
        "  return Other() == 3 + 5 ? 0 : 4;\n}\n")
    res = _compile(tmp_path, tmp_path / "count.cc", tmp_path / "other.cc", paths["cc"], link=True)
    assert res.returncode == 0, res.stderr
    assert subprocess.run([str(tmp_path / "prog")]).returncode == 0
    # main.cc uses the MicroInterpreter API (declared only in the stand-in): compile it,
    # with the golden header and without it.
    res = _compile(tmp_path, paths["main"])
    assert res.returncode == 0, res.stderr
    golden.unlink()
    res = _compile(tmp_path, paths["main"])
    assert res.returncode == 0, res.stderr


def test_the_makefile_builds_against_microlite_and_the_microfrontend(tmp_path):
    paths = _write(tmp_path)
    text = open(paths["makefile"]).read()
    assert "libtensorflow-microlite.a" in text and "-DTF_LITE_STATIC_MEMORY" in text
    for src in carray.MICROFRONTEND_SOURCES:
        assert f"$(TFLM)/{src}" in text
    assert "$(DOWNLOADS)/kissfft" in text
    assert "\n\t$(CXX) $(CPPFLAGS) $(CXXFLAGS) main.cc kws_model.cc" in text


def test_files_are_readable_by_the_team(tmp_path):
    old = os.umask(0o022)
    try:
        paths = _write(tmp_path)
    finally:
        os.umask(old)
    for path in paths.values():
        assert os.stat(path).st_mode & 0o777 == 0o644, path


@pytest.mark.slow
@needs_gxx
def test_generated_c_files_compile_and_link(tmp_path):
    from tfkd.export import micro
    from tfkd.compress import quantize as q
    from tfkd.models import build

    x = np.random.default_rng(0).uniform(0, 26, (8, 49, 40, 1)).astype(np.float32)
    flat = q.convert_int8(build("ds_cnn", (49, 40, 1), 4, channels=8, blocks=2), x)
    ops = micro.model_ops(flat)
    consts = {"InputScale": 0.1, "InputZeroPoint": -128, "TensorArenaSize": 4096,
              "FeatureKind": "microfrontend", "FeaturePcan": True}
    paths = carray.write_firmware_files(flat, str(tmp_path), "my-kws model",
                                        ["yes", "no", "up", "down"], consts, ops)
    assert os.path.basename(paths["h"]) == "my_kws_model.h"
    header = open(paths["h"]).read()
    assert "extern const unsigned char kModelData[];" in header
    assert "#ifndef TFKD_MY_KWS_MODEL_H_" in header
    assert "alignas(16) const unsigned char kModelData[]" in open(paths["cc"]).read()
    assert open(paths["tflite"], "rb").read() == flat
    (tmp_path / "a.cc").write_text(
        '#include "my_kws_model.h"\nint size_a() { return my_kws_model::kModelDataLen; }\n')
    (tmp_path / "check.cc").write_text(
        '#include "my_kws_model.h"\n#include "my_kws_model_ops.h"\n#include <cstdint>\n'
        "#include <cstdio>\nint size_a();\n"
        "int main() {\n"
        "  my_kws_model::OpResolver resolver;\n"
        "  if (my_kws_model::RegisterOps(resolver) != kTfLiteOk) return 3;\n"
        "  if (resolver.GetRegistrationLength() != my_kws_model::kOpCount) return 4;\n"
        "  if (reinterpret_cast<uintptr_t>(my_kws_model::kModelData) % 16) return 5;\n"
        '  std::printf("%d %s %d\\n", size_a(), my_kws_model::kCategoryLabels[1],\n'
        "              my_kws_model::kTensorArenaSize);\n"
        "  return size_a() == static_cast<int>(my_kws_model::kModelDataLen) ? 0 : 6;\n}\n")
    res = _compile(tmp_path, tmp_path / "check.cc", tmp_path / "a.cc", paths["cc"], link=True)
    assert res.returncode == 0, res.stderr
    out = subprocess.run([str(tmp_path / "prog")], capture_output=True, text=True)
    assert out.returncode == 0, out
    assert out.stdout.split() == [str(len(flat)), "no", "4096"]
    assert _compile(tmp_path, paths["main"]).returncode == 0
