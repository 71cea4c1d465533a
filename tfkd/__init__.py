"""tfkd: distill, prune, quantize to full int8 and export Keras models for TFLite Micro.

``tfkd.Distiller`` is the knowledge-distillation model; ``tfkd.keras`` is the Keras 2
(``tf_keras``) module that tfkd and its users should build models with.
"""

from tfkd._keras import keras
from tfkd.distill.distiller import Distiller
from tfkd.distill.features import FeaturePair
from tfkd.registry import Registry, UnknownNameError

__version__ = "0.1.0"
__all__ = ["Distiller", "FeaturePair", "Registry", "UnknownNameError", "keras", "__version__"]
