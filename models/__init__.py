"""tfkd's model zoo (installed as ``tfkd.models``): DS-CNN, tiny_conv and a ResNet teacher."""

from tfkd.models.cnn_teacher import resnet_teacher
from tfkd.models.ds_cnn import ds_cnn
from tfkd.models.tiny_conv import tiny_conv
from tfkd.models.zoo import MODELS, build, register

__all__ = ["MODELS", "build", "register", "ds_cnn", "tiny_conv", "resnet_teacher"]
