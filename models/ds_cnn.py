"""DS-CNN (Zhang et al. 2017, "Hello Edge"); the S size is MLPerf Tiny's KWS reference.

The XS size is tfkd's ≤ 23 KB student: 32 channels, 4 blocks and a first stride of 2×4
(time × frequency). On 49×40 microfrontend features it has 8,076 parameters, a 21,824 B
int8 ``.tflite`` and a 21,760 B tensor arena on the host (``benchmarks/teacher_gap.py``):
the first layer's output dominates the arena, so its frequency stride is the lever.
"""

from tfkd.lazy_tf import keras  # imported on first use: the config checks model names without TensorFlow

# Keras' default (0.99) needs hundreds of steps before the moving statistics are usable;
# a KWS epoch on a small data set is a few dozen steps, so validation (and best-epoch
# selection) would see a broken model for many epochs.
BN_MOMENTUM = 0.9

__all__ = ["ds_cnn", "PRESETS"]

#: size -> (channels, depthwise-separable blocks, first stride): S, M and L from the Hello
#: Edge paper; XS is the ≤ 23 KB student (see the module docstring).
PRESETS = {"xs": (32, 4, (2, 4)), "s": (64, 4, (2, 2)), "m": (172, 4, (2, 2)), "l": (276, 5, (2, 2))}


def ds_cnn(input_shape, num_labels, size="s", channels=None, blocks=None, dropout=0.2,
           first_kernel=(10, 4), first_stride=None, name=None):
    """Builds a DS-CNN that returns logits.

    Args:
      input_shape: ``(frames, features, 1)``.
      num_labels: output width.
      size: ``xs``, ``s``, ``m`` or ``l`` (sets channels, blocks and the first stride
        unless given).
      channels: filters of every layer (overrides the preset).
      blocks: number of depthwise-separable blocks (overrides the preset).
      dropout: dropout before the classifier (training only; not in the exported graph).
      first_kernel, first_stride: the first standard convolution (``first_stride``
        defaults to the size's: 2×4 for XS, 2×2 otherwise).
      name: model name (default ``ds_cnn_<size>``).

    Returns:
      A functional ``tf_keras`` model. Layer names are stable (``conv0``, ``dw1``,
      ``pw1``, ..., ``logits``) so that pruning and feature distillation can name them.
    """
    if size not in PRESETS:
        raise ValueError(f"size: must be one of {', '.join(PRESETS)}, got {size!r}")
    c, b, stride = PRESETS[size]
    c = channels or c
    b = blocks or b
    first_stride = tuple(first_stride or stride)
    if c < 1 or b < 0:
        raise ValueError(f"channels/blocks: must be positive, got {c}/{b}")
    inp = keras.Input(input_shape, name="features")
    x = keras.layers.Conv2D(c, first_kernel, strides=first_stride, padding="same",
                            use_bias=False, name="conv0")(inp)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="bn0")(x)
    x = keras.layers.ReLU(name="relu0")(x)
    for i in range(1, b + 1):
        x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{i}")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn_dw{i}")(x)
        x = keras.layers.ReLU(name=f"relu_dw{i}")(x)
        x = keras.layers.Conv2D(c, 1, use_bias=False, name=f"pw{i}")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn_pw{i}")(x)
        x = keras.layers.ReLU(name=f"relu_pw{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    out = keras.layers.Dense(num_labels, name="logits")(x)
    return keras.Model(inp, out, name=name or f"ds_cnn_{size}")
