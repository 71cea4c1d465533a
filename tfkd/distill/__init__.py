"""Knowledge distillation: the Distiller, its losses, feature maps and the teacher cache.

The names below load on first use: the config loader imports ``tfkd.distill.features``
for its ``FeaturePair``, and that must not import TensorFlow (``tfkd validate`` answers
before TensorFlow is needed).
"""

import importlib

__all__ = ["Distiller", "FeatureDistillation", "FeaturePair", "LOSSES", "LogitsDistillation", "get_loss"]

_HOMES = {"Distiller": "tfkd.distill.distiller", "FeatureDistillation": "tfkd.distill.features",
          "FeaturePair": "tfkd.distill.features", "LOSSES": "tfkd.distill.losses",
          "LogitsDistillation": "tfkd.distill.losses", "get_loss": "tfkd.distill.losses"}


def __getattr__(name):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'tfkd.distill' has no attribute {name!r}")
