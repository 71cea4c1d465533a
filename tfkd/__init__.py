"""tfkd: distill, prune, quantize to full int8 and export Keras models for TFLite Micro.

``tfkd.Distiller`` is the knowledge-distillation model; ``tfkd.keras`` is the Keras 2
(``tf_keras``) module that tfkd and its users should build models with.
"""

from tfkd._keras import keras
from tfkd.distill.distiller import Distiller
from tfkd.distill.features import FeaturePair
from tfkd.registry import Registry, UnknownNameError

__version__ = "0.1.0"
__all__ = ["Distiller", "FeaturePair", "Registry", "UnknownNameError", "keras", "__version__",
           "load_config", "run_pipeline"]


def __getattr__(name):
    # The pipeline pulls in tfmot, LiteRT and TFLM: import it only when asked for.
    if name == "load_config":
        from tfkd.config import load

        return load
    if name == "run_pipeline":
        from tfkd.pipeline.runner import run_pipeline

        return run_pipeline
    raise AttributeError(f"module 'tfkd' has no attribute {name!r}")
