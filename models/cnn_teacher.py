"""Teachers several times larger than DS-CNN-S: a ResNet-style CNN."""

from tfkd.lazy_tf import keras  # imported on first use: the config checks model names without TensorFlow

# Keras' default (0.99) needs hundreds of steps before the moving statistics are usable;
# a KWS epoch on a small data set is a few dozen steps, so validation (and best-epoch
# selection) would see a broken model for many epochs.
BN_MOMENTUM = 0.9

__all__ = ["resnet_teacher"]


def resnet_teacher(input_shape, num_labels, width=40, stages=3, blocks_per_stage=1,
                   dropout=0.3, name="resnet_teacher"):
    """A ResNet-style CNN (He et al. 2016) returning logits; ~0.5M parameters at width 40.

    Args:
      input_shape: ``(frames, features, 1)``.
      num_labels: output width.
      width: filters of the first stage; each stage doubles it.
      stages: number of stages; every stage after the first halves the resolution.
      blocks_per_stage: residual blocks per stage.
      dropout: dropout before the classifier.
      name: model name.

    Layer names: ``stem``, ``stage{s}_block{b}_out`` (block outputs), ``pool``, ``logits``.
    """
    inp = keras.Input(input_shape, name="features")
    # A strided stem as in DS-CNN: 49×40 → 25×20 keeps the teacher affordable on a CPU.
    x = keras.layers.Conv2D(width, (10, 4), strides=(2, 2), padding="same", use_bias=False,
                            name="stem_conv")(inp)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem")(x)
    for s in range(stages):
        filters = width * 2 ** s
        for b in range(blocks_per_stage):
            stride = 2 if (s > 0 and b == 0) else 1
            p = f"stage{s}_block{b}"
            y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                                    name=f"{p}_conv1")(x)
            y = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{p}_bn1")(y)
            y = keras.layers.ReLU(name=f"{p}_relu1")(y)
            y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{p}_conv2")(y)
            y = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{p}_bn2")(y)
            if stride != 1 or x.shape[-1] != filters:
                x = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                                        name=f"{p}_proj")(x)
                x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{p}_proj_bn")(x)
            x = keras.layers.Add(name=f"{p}_add")([x, y])
            x = keras.layers.ReLU(name=f"{p}_out")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    out = keras.layers.Dense(num_labels, name="logits")(x)
    return keras.Model(inp, out, name=name)
