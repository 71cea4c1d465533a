"""Knowledge distillation: the Distiller, its losses, feature maps and the teacher cache."""

from tfkd.distill.distiller import Distiller
from tfkd.distill.features import FeaturePair
from tfkd.distill.losses import LOSSES, get_loss

__all__ = ["Distiller", "FeaturePair", "LOSSES", "get_loss"]
