"""TFLite Micro on the host: run an int8 model and measure its tensor arena.

These are host figures (x86-64, TFLM's reference kernels, 64-bit pointers); a target
build differs (32-bit pointers, CMSIS-NN scratch buffers), hence a configurable margin.
"""

import contextlib
import ctypes
import os
import re
import sys
import tempfile

import numpy as np

__all__ = ["TFLMUnavailableError", "tflm_available", "TFLMRunner", "measure_arena"]


class TFLMUnavailableError(RuntimeError):
    """The ``tflite-micro`` Python package is not installed (Linux x86-64 wheels only)."""


def _runtime():
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
        _runtime()
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
        runtime = _runtime()
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


def _arena_from_report(text):
    m = re.search(r"Arena allocation total (\d+) bytes", text)
    return int(m.group(1)) if m else None


def measure_arena(flat):
    """The tensor-arena bytes TFLM's allocator uses for this model (host figure).

    Read from ``print_allocations()`` (captured from the C++ side); if that report
    cannot be parsed, the smallest arena that allocates and invokes is found by bisection.

    Raises:
      TFLMUnavailableError: ``tflite-micro`` is not installed.
    """
    runner = TFLMRunner(flat)
    with _capture_fds() as box:
        runner.interp.print_allocations()
    used = _arena_from_report(box["text"])
    if used is not None:
        return used
    return _bisect_arena(flat)


def _invokes(flat, size):
    try:
        with _capture_fds():
            r = TFLMRunner(flat, arena_size=size)
            r.interp.set_input(np.zeros(tuple(r.inp["shape"]), r.inp["dtype"]), 0)
            r.interp.invoke()
        return True
    except (RuntimeError, ValueError):
        return False


def _bisect_arena(flat):
    lo, hi = 0, 1 << 14
    while not _invokes(flat, hi):
        lo, hi = hi, hi * 2
        if hi > 1 << 30:
            raise RuntimeError("tflm: no arena up to 1 GiB allocates this model")
    while hi - lo > 16:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _invokes(flat, mid) else (mid, hi)
    return hi
