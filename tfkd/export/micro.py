"""TFLite Micro on the host: the runner and arena measurement now live in :mod:`tfkd.verify`.

These names stay importable from here for existing callers (the CLI, benchmarks).
"""

from tfkd.verify import TFLMRunner, TFLMUnavailableError, measure_arena, tflm_available

__all__ = ["TFLMUnavailableError", "tflm_available", "TFLMRunner", "measure_arena"]
