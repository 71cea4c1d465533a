"""Pruning: tfmot magnitude pruning and structured (channel) pruning.

Unstructured zeros (tfmot) do not shrink a TFLite Micro model: its flash holds dense int8
tensors and its arena holds dense activations. tfmot also leaves ``DepthwiseConv2D``
unpruned. :func:`channel_prune` removes whole filters instead and rebuilds a narrower
model, which shrinks both the ``.tflite`` bytes and the arena.

Both take a ``train(model, callbacks)`` function that fine-tunes the model they hand it
(the pipeline passes one that distills from the teacher), so the teacher keeps teaching
while the student is pruned.
"""

import numpy as np

from tfkd._keras import keras

__all__ = ["magnitude_prune", "kernel_sparsity", "channel_prune", "PruneError",
           "prunable_layer_names"]


class PruneError(ValueError):
    """A model or setting that a pruning method cannot handle."""


def _is_prunable(layer):
    # tfmot prunes Conv2D and Dense kernels; DepthwiseConv2D subclasses Conv2D in Keras
    # 2 but tfmot's registry gives it no prunable weights.
    return isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and \
        not isinstance(layer, keras.layers.DepthwiseConv2D)


def prunable_layer_names(model):
    """Names of the layers whose kernels magnitude pruning acts on."""
    return [l.name for l in model.layers if _is_prunable(l)]


def _schedule(kind, target_sparsity, end_step, begin_step=0, frequency=10):
    import tensorflow_model_optimization as tfmot

    s = tfmot.sparsity.keras
    if kind == "polynomial":
        return s.PolynomialDecay(initial_sparsity=0.0, final_sparsity=target_sparsity,
                                 begin_step=begin_step, end_step=max(end_step, begin_step + 1),
                                 frequency=frequency)
    if kind == "constant":
        return s.ConstantSparsity(target_sparsity, begin_step=begin_step, frequency=frequency)
    raise PruneError(f"schedule: must be polynomial or constant, got {kind!r}")


def magnitude_prune(model, train, *, target_sparsity, end_step, schedule="polynomial",
                    exclude=(), frequency=10):
    """tfmot magnitude pruning of a functional model, fine-tuned by ``train``.

    Args:
      model: the functional student (never a Distiller); it is not modified.
      train: ``train(wrapped_model, callbacks)``, which must fit the model it is given
        with the callbacks (the pruning-step update among them).
      target_sparsity: final fraction of zero weights in each pruned kernel, in [0, 1).
      end_step: the optimizer step at which the schedule reaches the target.
      schedule: ``polynomial`` (decay from 0) or ``constant``.
      exclude: layer names left dense.
      frequency: steps between mask updates.

    Returns:
      The stripped (plain Keras) pruned model.

    Raises:
      PruneError: a bad sparsity, schedule or excluded name.
    """
    import tensorflow_model_optimization as tfmot

    if not 0.0 <= target_sparsity < 1.0:
        raise PruneError(f"target_sparsity: must be in [0, 1), got {target_sparsity}")
    names = {l.name for l in model.layers}
    unknown = sorted(set(exclude) - names)
    if unknown:
        raise PruneError(f"exclude: no layer named {', '.join(unknown)}")
    sched = _schedule(schedule, target_sparsity, end_step, frequency=frequency)
    base = keras.models.clone_model(model)
    base.set_weights(model.get_weights())

    def wrap(layer):
        if _is_prunable(layer) and layer.name not in exclude:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=sched)
        return layer

    # clone_function hands back base's own layers (wrapped), so weights carry over.
    wrapped = keras.models.clone_model(base, clone_function=wrap)
    train(wrapped, [tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(wrapped)


def kernel_sparsity(model):
    """Per-layer fraction of zero weights in the prunable kernels, plus their total.

    Returns:
      ``({layer_name: fraction}, overall_fraction)``.
    """
    per, zeros, total = {}, 0, 0
    for layer in model.layers:
        if not _is_prunable(layer):
            continue
        k = layer.get_weights()[0]
        per[layer.name] = float(np.mean(k == 0))
        zeros += int(np.sum(k == 0))
        total += k.size
    return per, (zeros / total if total else 0.0)


def _chain(model):
    layers = model.layers
    for layer in layers[1:]:
        inbound = layer._inbound_nodes[0].inbound_layers if layer._inbound_nodes else []
        if isinstance(inbound, list) and len(inbound) > 1:
            raise PruneError(f"structured pruning supports chain models only: layer "
                             f"{layer.name!r} has {len(inbound)} inputs")
    return layers


def channel_prune(model, train, *, ratio, exclude=(), multiple=4):
    """Structured pruning: removes the weakest filters and rebuilds a narrower model.

    Filters are ranked by the L1 norm of their kernel times the ``|gamma|`` of a following
    BatchNormalization. The output layer keeps every unit. Downstream layers lose the
    matching input channels (BatchNorm, depthwise convolutions, the next kernel, and
    a Dense after Flatten).

    Args:
      model: a functional chain model (no residual branches); it is not modified.
      train: ``train(narrow_model, callbacks)`` fine-tunes the rebuilt model.
      ratio: fraction of filters removed from each prunable layer, in [0, 1).
      exclude: layer names left at full width.
      multiple: round kept filter counts to this multiple (kernels like multiples of 4).

    Returns:
      The narrower, fine-tuned model.

    Raises:
      PruneError: a bad ratio, an unknown excluded name or a branching model.
    """
    if not 0.0 <= ratio < 1.0:
        raise PruneError(f"ratio: must be in [0, 1), got {ratio}")
    layers = _chain(model)
    names = {l.name for l in layers}
    unknown = sorted(set(exclude) - names)
    if unknown:
        raise PruneError(f"exclude: no layer named {', '.join(unknown)}")
    output_layer = layers[-1]
    keep = None  # indices of the incoming channels kept
    pending = []
    for i, layer in enumerate(layers[1:], start=1):
        cfg = layer.get_config()
        w = layer.get_weights()
        if _is_prunable(layer):
            k = w[0]
            if keep is not None:
                k = k[..., keep, :] if k.ndim == 4 else k[keep]
            out_keep = np.arange(k.shape[-1])
            if layer is not output_layer and layer.name not in exclude and ratio > 0:
                score = np.abs(k).reshape(-1, k.shape[-1]).sum(0)
                nxt = layers[i + 1] if i + 1 < len(layers) else None
                if isinstance(nxt, keras.layers.BatchNormalization):
                    score = score * np.abs(nxt.get_weights()[0])
                n_keep = max(multiple, int(round(k.shape[-1] * (1 - ratio) / multiple)) * multiple)
                n_keep = min(n_keep, k.shape[-1])
                out_keep = np.sort(np.argsort(-score, kind="stable")[:n_keep])
            w = [k[..., out_keep]] + ([w[1][out_keep]] if len(w) > 1 else [])
            cfg["filters" if "filters" in cfg else "units"] = len(out_keep)
            keep = out_keep
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            if keep is not None:
                w = [w[0][:, :, keep, :]] + ([w[1][keep]] if len(w) > 1 else [])
        elif isinstance(layer, keras.layers.BatchNormalization):
            if keep is not None:
                w = [a[keep] for a in w]
        elif isinstance(layer, keras.layers.Flatten):
            if keep is not None:
                spatial = int(np.prod(layer.input_shape[1:-1]))
                channels = layer.input_shape[-1]
                keep = np.array([p * channels + c for p in range(spatial) for c in keep])
        elif w:
            raise PruneError(f"structured pruning: layer {layer.name!r} "
                             f"({type(layer).__name__}) is not supported")
        pending.append((type(layer).from_config(cfg), w))
    inp = keras.Input(model.input_shape[1:], name=layers[0].name)
    x = inp
    for new, _ in pending:
        x = new(x)
    narrow = keras.Model(inp, x, name=f"{model.name}_narrow")
    for new, w in pending:
        if w:
            new.set_weights(w)
    train(narrow, [])
    return narrow
