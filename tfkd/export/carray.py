"""Firmware export: the model as a C array (``.cc``/``.h``), its op resolver and a host example.

Content, naming and file writing are kept apart: :func:`c_identifier` sanitizes names,
``render_*`` build the text, :func:`write_firmware_files` writes it atomically. Everything
rendered here compiles warning-free as C++17 (``-Wall -Wextra``) against TensorFlow Lite
Micro; ``tests/data/tflm`` holds a faithful subset of TFLM's headers to check that.
"""

import functools
import os
import re

from tfkd.fileio import atomic_write

__all__ = ["UnsupportedOpError", "c_identifier", "c_string", "resolver_method", "resolver_table",
           "render_source", "render_header", "render_resolver", "render_main", "render_makefile",
           "render_golden", "write_firmware_files"]

#: Python type -> C type of the header's constants (one table, no if/elif chains).
_C_TYPES = {bool: "bool", int: "int", float: "float", str: "const char*"}

#: C++17 keywords and alternative tokens: refused as names (they would be the namespace).
CPP_KEYWORDS = frozenset("""
alignas alignof and and_eq asm auto bitand bitor bool break case catch char char16_t char32_t
char8_t class compl concept const const_cast consteval constexpr constinit continue co_await
co_return co_yield decltype default delete do double dynamic_cast else enum explicit export
extern false float for friend goto if inline int long mutable namespace new noexcept not not_eq
nullptr operator or or_eq private protected public register reinterpret_cast requires return
short signed sizeof static static_assert static_cast struct switch template this thread_local
throw true try typedef typeid typename union unsigned using virtual void volatile wchar_t while
xor xor_eq
""".split())

_TABLE = os.path.join(os.path.dirname(__file__), "tflm_resolver_ops.txt")

#: TFLM's microfrontend library (not part of libtensorflow-microlite.a), relative to a
#: tflite-micro checkout. kiss_fft_int16.cc #includes kissfft's kiss_fft.c and
#: tools/kiss_fftr.c itself, so kissfft only needs to be on the include path.
MICROFRONTEND_SOURCES = tuple(
    f"tensorflow/lite/experimental/microfrontend/lib/{f}" for f in (
        "fft.cc", "fft_util.cc", "kiss_fft_int16.cc", "filterbank.c", "filterbank_util.c",
        "frontend.c", "frontend_util.c", "log_lut.c", "log_scale.c", "log_scale_util.c",
        "noise_reduction.c", "noise_reduction_util.c", "pcan_gain_control.c",
        "pcan_gain_control_util.c", "window.c", "window_util.c"))


class UnsupportedOpError(ValueError):
    """A builtin op that TFLite Micro's ``MicroMutableOpResolver`` cannot register."""


@functools.lru_cache(maxsize=None)
def resolver_table():
    """``{BUILTIN_OP: "AddMethod"}`` from TFLM's real resolver (``tflm_resolver_ops.txt``)."""
    table = {}
    with open(_TABLE, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                op, method = line.split()
                table[op] = method
    return table


def c_identifier(name):
    """A valid C++ identifier from any model name (``"kws-micro v2"`` → ``kws_micro_v2``).

    Runs of other characters become one ``_`` (identifiers with ``__`` are reserved in
    C++), and a leading digit gets an ``m_`` prefix.

    Raises:
      ValueError: the result is a C++ keyword (``class``, ``int``…) or ``std``, ``tflite``, ``main``,
        which cannot name the model's namespace.
    """
    ident = re.sub(r"[^0-9A-Za-z]+", "_", str(name)).strip("_") or "model"
    if ident[0].isdigit():
        ident = "m_" + ident
    if ident in CPP_KEYWORDS or ident in ("std", "tflite", "main"):
        raise ValueError(f"export.name: {name!r} gives the C++ namespace {ident!r}, a keyword "
                         f"or a namespace of the C++ library or TFLM; choose another name")
    return ident


def _guard(ident, suffix=""):
    # Upper-casing alone maps "Model" and "model" to one guard. Idents with capitals get
    # the positions of their capitals appended (after _H_, where an all-lowercase ident's
    # guard always ends), which keeps the mapping one-to-one.
    mask = sum(1 << i for i, c in enumerate(ident) if c.isupper())
    return f"TFKD_{ident.upper()}{suffix}_H_" + (f"{mask:X}" if mask else "")


def c_string(text, what="string"):
    """``text`` as a C/C++ string literal, quotes included.

    Escapes backslash, quotes, ``?`` (so ``??=`` and friends can never form a trigraph)
    and every byte outside printable ASCII (octal, three digits: unlike ``\\x`` an octal
    escape cannot swallow the character after it). UTF-8 text is kept byte for byte.

    Raises:
      ValueError: ``text`` holds a NUL character, which would end the C string early.
    """
    text = str(text)
    if "\0" in text:
        raise ValueError(f"{what} {text!r}: contains a NUL character, which a C string "
                         f"cannot hold")
    out = []
    for b in text.encode("utf-8"):
        c = chr(b)
        if c in '\\"?':
            out.append("\\" + c)
        elif 0x20 <= b < 0x7F:
            out.append(c)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def resolver_method(op_name):
    """The ``MicroMutableOpResolver`` method for a builtin op (``DEPTHWISE_CONV_2D`` → ``AddDepthwiseConv2D``).

    Raises:
      UnsupportedOpError: TFLite Micro has no such builtin op.
    """
    method = resolver_table().get(op_name)
    if method is None:
        raise UnsupportedOpError(
            f"op {op_name} is not supported by TensorFlow Lite Micro's MicroMutableOpResolver "
            f"(tfkd/export/tflm_resolver_ops.txt); change the model so that it does not use it")
    return method


def _c_literal(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(float(value)) + "f"
    if isinstance(value, str):
        return c_string(value, "constant")
    return str(int(value))


def _bytes_block(data, per_line=12):
    lines = []
    for i in range(0, len(data), per_line):
        lines.append("    " + ", ".join(f"0x{b:02x}" for b in data[i:i + per_line]) + ",")
    return "\n".join(lines)


def render_source(flat, ident, labels):
    """The ``.cc`` file: the aligned model array, its length and the label names."""
    label_lines = "\n".join(f"    {c_string(l, 'label')}," for l in labels)
    return f"""// Generated by tfkd: the int8 TFLite model as a C array for TensorFlow Lite Micro.
#include "{ident}.h"

namespace {ident} {{

alignas(16) const unsigned char kModelData[] = {{
{_bytes_block(flat)}
}};
const unsigned int kModelDataLen = {len(flat)};

const char* const kCategoryLabels[kCategoryCount] = {{
{label_lines}
}};

}}  // namespace {ident}
"""


def _conversions(constants):
    """Inline int8 helpers for the header, from whichever scales ``constants`` holds."""
    out = []
    if "InputScale" in constants and "InputZeroPoint" in constants:
        out.append("""
// Model input: float feature -> int8, as TFLite quantizes (round half to even, then
// saturate). The clamp happens in float, before the cast: a plain int8_t cast of a large
// value wraps around to a negative one.
inline int8_t QuantizeInput(float value) {
  const float q = std::nearbyint(value / kInputScale) + static_cast<float>(kInputZeroPoint);
  return static_cast<int8_t>(q < -128.0f ? -128.0f : (q > 127.0f ? 127.0f : q));
}""")
        if constants.get("FeatureKind", "microfrontend") == "microfrontend" and "FeatureScale" in constants:
            out.append("""
// The microfrontend's uint16 output (FrontendOutput::values) -> model input int8,
// saturated: the model saw float features = value * kFeatureScale.
inline int8_t FeatureToInt8(uint16_t value) {
  return QuantizeInput(static_cast<float>(value) * kFeatureScale);
}""")
    if "OutputScale" in constants and "OutputZeroPoint" in constants:
        out.append("""
// Model output: int8 -> float score (int32 first: int8 arithmetic would wrap).
inline float DequantizeOutput(int8_t value) {
  return static_cast<float>(static_cast<int32_t>(value) - kOutputZeroPoint) * kOutputScale;
}""")
    return "\n".join(out)


def render_header(ident, labels, constants, ops):
    """The ``.h`` file: ``extern`` declarations, an include guard and the model's settings.

    Args:
      ident: the C identifier (namespace and guard).
      labels: label names in output order.
      constants: ``{CamelName: value}`` written as ``constexpr`` (ints, floats, bools,
        strings), e.g. input scale and zero point, feature settings, arena size. With
        ``InputScale``/``InputZeroPoint`` the header also gets ``QuantizeInput`` (and,
        for microfrontend features with ``FeatureScale``, ``FeatureToInt8``); with
        ``OutputScale``/``OutputZeroPoint``, ``DequantizeOutput``.
      ops: the builtin op names the model uses.
    """
    guard = _guard(ident)
    for k in constants:
        if not re.fullmatch(r"[A-Za-z0-9_]+", k):
            raise ValueError(f"constant name {k!r}: must be letters, digits and _")
    const_lines = "\n".join(
        f"constexpr {_C_TYPES[type(v)]} k{k} = {_c_literal(v)};" for k, v in constants.items())
    return f"""// Generated by tfkd. Declarations only: kModelData is defined in {ident}.cc, so any
// number of source files can include this header.
#ifndef {guard}
#define {guard}

#include <cmath>
#include <cstdint>

namespace {ident} {{

// The int8 .tflite flatbuffer (16-byte aligned, as TFLite Micro requires).
extern const unsigned char kModelData[];
extern const unsigned int kModelDataLen;

constexpr int kCategoryCount = {len(labels)};
extern const char* const kCategoryLabels[kCategoryCount];

// Settings measured or chosen when the model was built.
{const_lines}
{_conversions(constants)}

// Ops used (register them with {ident}_ops.h): {", ".join(ops)}
constexpr int kOpCount = {len(ops)};

}}  // namespace {ident}

#endif  // {guard}
"""


def render_resolver(ident, ops):
    """``<name>_ops.h``: a ``MicroMutableOpResolver<N>`` with exactly the model's ops.

    Raises:
      UnsupportedOpError: an op has no ``MicroMutableOpResolver`` method.
    """
    guard = _guard(ident, "_OPS")
    adds = "\n".join(f"  if (resolver.{resolver_method(op)}() != kTfLiteOk) return kTfLiteError;"
                     for op in ops)
    return f"""// Generated by tfkd: the op resolver for {ident} ({len(ops)} ops).
#ifndef {guard}
#define {guard}

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

namespace {ident} {{

using OpResolver = tflite::MicroMutableOpResolver<{max(1, len(ops))}>;

// Registers exactly the ops the model uses.
inline TfLiteStatus RegisterOps(OpResolver& resolver) {{
{adds}
  return kTfLiteOk;
}}

}}  // namespace {ident}

#endif  // {guard}
"""


def render_main(ident, constants):
    """``main.cc``: a host program that runs the model in TFLM (golden vectors when present)."""
    arena = ("constexpr int kArenaSize = kTensorArenaSize;" if "TensorArenaSize" in constants
             else "constexpr int kArenaSize = 64 * 1024;  // no measured size was given")
    feed = ("""
// The audio path on a device: the microfrontend's uint16 features (kFeatureFrames x
// kFeatureChannels, oldest frame first) -> the int8 input, saturated.
void FillInput(const uint16_t* features, TfLiteTensor* input) {
  for (size_t i = 0; i < input->bytes; ++i)
    input->data.int8[i] = FeatureToInt8(features[i]);
}
""" if "FeatureToInt8" in _conversions(constants) else "")
    silence = ("""  // Frontend output 0 everywhere (digital silence) as a smoke test.
  static uint16_t silence[kFeatureFrames * kFeatureChannels];
  FillInput(silence, input);"""
               if feed and "FeatureFrames" in constants and "FeatureChannels" in constants
               else """  // The input zero point everywhere as a smoke test.
  for (size_t i = 0; i < input->bytes; ++i)
    input->data.int8[i] = static_cast<int8_t>(input->params.zero_point);""")
    return f"""// Generated by tfkd: runs {ident} in TensorFlow Lite Micro on the host. Build it with
// the Makefile in this folder against a tflite-micro checkout.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "{ident}.h"
#include "{ident}_ops.h"
#if __has_include("{ident}_golden.h")
#include "{ident}_golden.h"
#define TFKD_HAVE_GOLDEN 1
#endif

using namespace {ident};
{feed}
namespace {{

{arena}
alignas(16) uint8_t tensor_arena[kArenaSize];

int Top(const TfLiteTensor* output) {{
  int best = 0;
  for (int i = 1; i < kCategoryCount; ++i)
    if (output->data.int8[i] > output->data.int8[best]) best = i;
  return best;
}}

}}  // namespace

int main() {{
  const tflite::Model* model = tflite::GetModel(kModelData);
  static OpResolver resolver;
  if (RegisterOps(resolver) != kTfLiteOk) {{
    std::printf("RegisterOps failed\\n");
    return 1;
  }}
  tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, kArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) {{
    std::printf("AllocateTensors failed: the arena (%d bytes) is too small?\\n", kArenaSize);
    return 1;
  }}
  std::printf("arena: %u of %d bytes used\\n",
              static_cast<unsigned>(interpreter.arena_used_bytes()), kArenaSize);
  TfLiteTensor* input = interpreter.input(0);
  const TfLiteTensor* output = interpreter.output(0);
#ifdef TFKD_HAVE_GOLDEN
  int failures = 0;
  for (int g = 0; g < kGoldenCount; ++g) {{
    for (int i = 0; i < kGoldenInputSize; ++i) input->data.int8[i] = kGoldenInputs[g][i];
    if (interpreter.Invoke() != kTfLiteOk) return 1;
    int worst = 0;
    for (int i = 0; i < kGoldenOutputSize; ++i)
      worst = std::max(worst, std::abs(output->data.int8[i] - kGoldenOutputs[g][i]));
    failures += worst > 1;
    std::printf("golden %d: %s, largest difference %d int8 step(s)\\n", g,
                kCategoryLabels[Top(output)], worst);
  }}
  return failures == 0 ? 0 : 1;
#else
{silence}
  if (interpreter.Invoke() != kTfLiteOk) return 1;
  std::printf("top label: %s\\n", kCategoryLabels[Top(output)]);
  return 0;
#endif
}}
"""


def render_makefile(ident):
    """A ``Makefile`` that builds ``main.cc`` against a tflite-micro checkout's microlite."""
    sources = " \\\n  ".join(f"$(TFLM)/{s}" for s in MICROFRONTEND_SOURCES)
    return f"""# Generated by tfkd: builds main.cc (and {ident}.cc) with TensorFlow Lite Micro.
#
#   git clone https://github.com/tensorflow/tflite-micro
#   make -C tflite-micro -f tensorflow/lite/micro/tools/make/Makefile microlite
#   make TFLM=$$PWD/tflite-micro && ./{ident}_main
#
# libtensorflow-microlite.a holds the interpreter and kernels. The microfrontend (the
# audio features the model was trained on) is not part of it: FRONTEND_SRCS lists its
# sources, built here too so that a firmware can call FrontendProcessSamples.
TFLM ?= $(error set TFLM to a tflite-micro checkout)
DOWNLOADS = $(TFLM)/tensorflow/lite/micro/tools/make/downloads
MICROLITE ?= $(firstword $(wildcard $(TFLM)/gen/*/lib/libtensorflow-microlite.a))

CXX ?= g++
CC ?= gcc
INCLUDES = -I. -I$(TFLM) -I$(DOWNLOADS)/flatbuffers/include -I$(DOWNLOADS)/gemmlowp \\
  -I$(DOWNLOADS)/kissfft
CPPFLAGS += -DTF_LITE_STATIC_MEMORY $(INCLUDES)
CXXFLAGS += -std=c++17 -O2 -Wall -Wextra
CFLAGS += -std=c11 -O2

FRONTEND_SRCS = \\
  {sources}
FRONTEND_OBJS = $(patsubst $(TFLM)/%,obj/%.o,$(FRONTEND_SRCS))

{ident}_main: main.cc {ident}.cc {ident}.h {ident}_ops.h $(FRONTEND_OBJS)
\t$(CXX) $(CPPFLAGS) $(CXXFLAGS) main.cc {ident}.cc $(FRONTEND_OBJS) $(MICROLITE) -o $@

obj/%.c.o: $(TFLM)/%.c
\t@mkdir -p $(dir $@)
\t$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

obj/%.cc.o: $(TFLM)/%.cc
\t@mkdir -p $(dir $@)
\t$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@

clean:
\trm -rf obj {ident}_main

.PHONY: clean
"""


def write_firmware_files(flat, out_dir, name, labels, constants, ops, writer=None):
    """Writes ``<name>.tflite``, ``.cc``, ``.h``, ``_ops.h``, ``main.cc`` and ``Makefile``.

    Everything is rendered before the first file is written, so a bad op, label or name
    leaves no partial export behind.

    Args:
      flat: the int8 model bytes.
      out_dir: the destination folder.
      name: the model name (sanitized for C identifiers and file names).
      labels, constants, ops: see :func:`render_header`.
      writer: ``writer(path, bytes_or_str)``, an atomic file writer (default: write
        to a temporary file and rename).

    Returns:
      ``{kind: path}`` for ``tflite``, ``cc``, ``h``, ``ops``, ``main`` and ``makefile``.

    Raises:
      UnsupportedOpError: an op TFLite Micro cannot register (named in the message).
      ValueError: a name that is a C++ keyword, or a label a C string cannot hold.
    """
    writer = writer or atomic_write
    ident = c_identifier(name)
    content = {
        "tflite": (f"{ident}.tflite", bytes(flat)),
        "ops": (f"{ident}_ops.h", render_resolver(ident, ops)),
        "cc": (f"{ident}.cc", render_source(flat, ident, labels)),
        "h": (f"{ident}.h", render_header(ident, labels, constants, ops)),
        "main": ("main.cc", render_main(ident, constants)),
        "makefile": ("Makefile", render_makefile(ident)),
    }
    paths = {}
    for kind, (fname, text) in content.items():
        paths[kind] = os.path.join(out_dir, fname)
        writer(paths[kind], text)
    return paths


def render_golden(identifier, inputs_q, outputs_q):
    """``<name>_golden.h``: int8 test inputs and the outputs TFLM gave, for an on-device check.

    The arrays are C++17 ``inline constexpr``: one copy in the program however many
    source files include the header.
    """
    ident = identifier
    guard = _guard(ident, "_GOLDEN")
    n = len(inputs_q)

    def rows(a):
        return "\n".join("  {" + ", ".join(str(int(v)) for v in row.reshape(-1)) + "}," for row in a)
    return f"""// Generated by tfkd: {n} test inputs (int8) and TFLM's host outputs for them (C++17).
#ifndef {guard}
#define {guard}

#include <cstdint>

namespace {ident} {{

inline constexpr int kGoldenCount = {n};
inline constexpr int kGoldenInputSize = {inputs_q[0].size};
inline constexpr int kGoldenOutputSize = {outputs_q[0].size};
// Outputs may differ by one int8 step on targets with optimized kernels.
inline constexpr int8_t kGoldenInputs[kGoldenCount][kGoldenInputSize] = {{
{rows(inputs_q)}
}};
inline constexpr int8_t kGoldenOutputs[kGoldenCount][kGoldenOutputSize] = {{
{rows(outputs_q)}
}};

}}  // namespace {ident}

#endif  // {guard}
"""
