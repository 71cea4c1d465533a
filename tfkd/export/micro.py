"""The model runtimes on the host: LiteRT and TensorFlow Lite Micro, int8 I/O and the arena.

:class:`LiteRTRunner` and :class:`TFLMRunner` run a ``.tflite`` one sample at a time (batch
1, as on the device); :func:`io_quantization`, :func:`quantize_input` and
:func:`dequantize_output` are the int8 I/O the firmware does; :func:`measure_arena` is the
tensor arena TFLM's allocator uses. The export stage (golden vectors), the checks in
:mod:`tfkd.verify`, ``tfkd eval`` and the search run models through here.

TFLite Micro figures are host figures (x86-64, TFLM's reference kernels, 64-bit pointers);
a target build differs (32-bit pointers, CMSIS-NN scratch buffers), hence the export's
configurable arena margin.
"""

import contextlib
import ctypes
import os
import re
import sys
import tempfile

import numpy as np

__all__ = ["TFLMUnavailableError", "tflm_available", "interpreter", "model_ops", "io_quantization",
           "quantize_input", "dequantize_output", "LiteRTRunner", "TFLMRunner", "measure_arena",
           "smallest_arena", "arena_invokes"]


class TFLMUnavailableError(RuntimeError):
    """The ``tflite-micro`` Python package is not installed (Linux x86-64 wheels only)."""


# -- LiteRT -------------------------------------------------------------------------------

def interpreter(flat):
    """A LiteRT interpreter of ``flat`` with built-in ops only (no default delegates)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    return Interpreter(model_content=flat,
                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


def model_ops(flat):
    """The distinct op names of a ``.tflite`` model, in first-use order (``CONV_2D``, ...)."""
    ops = []
    for op in interpreter(flat)._get_ops_details():
        if op["op_name"] not in ops:
            ops.append(op["op_name"])
    return ops


def io_quantization(flat):
    """``((in_scale, in_zero_point), (out_scale, out_zero_point))`` read from the model."""
    interp = interpreter(flat)
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
        self.interp = interpreter(flat)
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
