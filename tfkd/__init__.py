"""tfkd: distill, prune, quantize to full int8 and export Keras models for TFLite Micro.

``tfkd.Distiller`` is the knowledge-distillation model; ``tfkd.keras`` is the Keras 2
(``tf_keras``) module that tfkd and its users should build models with.

Importing ``tfkd`` does not import TensorFlow: the names below load on first use, so
``tfkd --version`` and ``tfkd validate`` answer in well under a second.
"""

from tfkd.registry import Registry, UnknownNameError

__version__ = "0.1.0"
__all__ = ["Distiller", "FeaturePair", "Registry", "UnknownNameError", "keras", "__version__",
           "load_config", "run_pipeline"]


def _keras_names():
    # One import for all three: whoever gets `tfkd.keras` can load a saved Distiller,
    # since importing the distiller module registers it with Keras.
    from tfkd._keras import keras
    from tfkd.distill.distiller import Distiller
    from tfkd.distill.features import FeaturePair

    return {"keras": keras, "Distiller": Distiller, "FeaturePair": FeaturePair}


def __getattr__(name):
    # TensorFlow, tfmot, LiteRT and TFLM load only when asked for.
    if name in ("keras", "Distiller", "FeaturePair"):
        names = _keras_names()
        globals().update(names)
        return names[name]
    if name == "load_config":
        from tfkd.config import load

        return load
    if name == "run_pipeline":
        from tfkd.pipeline.runner import run_pipeline

        return run_pipeline
    raise AttributeError(f"module 'tfkd' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
