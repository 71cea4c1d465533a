"""Knowledge distillation: the Distiller, its losses, feature maps and the teacher cache."""

from tfkd.distill.distiller import Distiller
from tfkd.distill.features import FeatureDistillation, FeaturePair
from tfkd.distill.losses import LOSSES, LogitsDistillation, get_loss

__all__ = ["Distiller", "FeatureDistillation", "FeaturePair", "LOSSES", "LogitsDistillation", "get_loss"]
