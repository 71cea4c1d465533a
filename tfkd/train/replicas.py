"""Training on several replicas as on one device with the global batch.

:func:`global_batch` makes a model's BatchNormalization and Dropout layers, and the
trainer's loss, behave under a ``tf.distribute`` strategy as they do on one device with
the whole global batch (see its docstring). It replaces Keras internals on *instances*
and restores them on exit; :func:`tfkd.train.fit.fit` is its caller.
"""

import contextlib
import threading

from tfkd import distribute
from tfkd.lazy_tf import keras, tf

__all__ = ["global_batch"]


def _replica_rows(ctx, n):
    """``(offset, total)`` of this replica's ``n`` rows in the step's global batch.

    The strategy cuts each global batch into consecutive slices in replica order
    (``tf.data`` rebatching, then sharding by element between workers), so a replica's
    rows start after those of the replicas before it. Sizes travel as float32: every
    cross-device implementation sums those.
    """
    count = ctx.num_replicas_in_sync
    mine = tf.one_hot(ctx.replica_id_in_sync_group, count, dtype=tf.float32) * tf.cast(n, tf.float32)
    sizes = tf.cast(ctx.all_reduce(tf.distribute.ReduceOp.SUM, mine), tf.int32)
    before = tf.range(count) < ctx.replica_id_in_sync_group
    return tf.reduce_sum(tf.where(before, sizes, 0)), tf.reduce_sum(sizes)


class _GlobalDropout:
    """A legacy-RNG Dropout's sampler that draws the mask of the whole global batch.

    One process draws ``uniform(shape=[B, ...], seeds=(global, op))`` from a stateful
    kernel. Every replica here draws that same ``[B, ...]`` tensor (the same seeds, so the
    kernels' streams advance alike step after step) and keeps its own rows: the union of
    the replicas' masks is the one-process mask. The op seed is the one the one-process
    graph gives the op (the graph's count of seedless random ops, taken once per call
    site for all replicas, as ``tf.nn.dropout(seed=None)`` does).
    """

    def __init__(self):
        self.seeds = {}  # (graph, call number) -> op seed
        self.calls = {}  # (graph, thread) -> calls so far
        self.lock = threading.Lock()

    def _op_seed(self):
        graph = tf.compat.v1.get_default_graph()
        key = (id(graph), threading.get_ident())
        with self.lock:
            call = self.calls.get(key, 0)
            self.calls[key] = call + 1
            if (id(graph), call) not in self.seeds:
                # Advances the graph's counter exactly once, as the one-process op does.
                self.seeds[(id(graph), call)] = tf.compat.v1.random.get_seed(None)[1]
            return self.seeds[(id(graph), call)]

    def __call__(self, inputs, rate, noise_shape=None):
        ctx = tf.distribute.get_replica_context()
        op_seed = self._op_seed()

        def sampler(shape, dtype):
            shape = tf.convert_to_tensor(shape, tf.int32)
            offset, total = _replica_rows(ctx, shape[0])
            whole = tf.random.uniform(tf.concat([[total], shape[1:]], 0), dtype=dtype, seed=op_seed)
            return whole[offset:offset + shape[0]]

        return tf.nn.experimental.general_dropout(inputs, rate=rate, noise_shape=noise_shape,
                                                  uniform_sampler=sampler)


@contextlib.contextmanager
def global_batch(model, strategy=None, *, trainer=None):
    """Makes ``model`` train on a strategy's replicas as on one device with the global batch.

    With more than one replica in sync, while the context is open:

    * ``trainer`` (the compiled model whose ``fit`` runs, e.g. a Distiller around
      ``model``; default ``model``) scales each replica's loss by its share of the global
      batch: Keras averages the replicas' local means, which is the global mean only when
      the slices are equal (a short last batch splits unevenly);
    * BatchNormalization layers normalize with the statistics of the global batch (the
      replicas all-reduce per-channel sums, in two passes as one device computes them),
      not of their slice, and keep moving statistics as the one-device layer does;
    * Dropout layers (Keras' legacy stateful RNG, the default; no fixed seed, a per-example
      noise shape) draw the mask of the whole global batch, with the seeds one process
      would use, and apply their rows of it.

    Together with the input pipeline's slicing of each global batch (see
    ``StoreData.train_dataset``), a replicated step then differs from the one-device step
    by floating-point summation order only. With one replica it changes nothing. The
    layers get their own settings back on exit, so saved models are the same.

    Args:
      model: the Keras model that trains (layers are found recursively).
      strategy: the strategy (default: the current one).

    Yields:
      ``model``.
    """
    strategy = strategy or tf.distribute.get_strategy()
    if distribute.replicas(strategy) < 2:
        yield model
        return
    restore = []
    sampler = _GlobalDropout()
    trainer = model if trainer is None else trainer
    restore.append((trainer, {"compute_loss": None}))
    trainer.compute_loss = _share_weighted(trainer.compute_loss)
    for layer in _layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            restore.append((layer, {"synchronized": False, "fused": layer.fused,
                                    "_calculate_mean_and_var": None, "_assign_moving_average": None}))
            _synchronize(layer, unbiased=bool(layer.fused))
        gen = getattr(layer, "_random_generator", None)
        if (isinstance(layer, keras.layers.Dropout) and gen is not None
                and getattr(gen, "_rng_type", None) == gen.RNG_LEGACY_STATEFUL
                and getattr(gen, "_seed", None) is None
                and (layer.noise_shape is None or layer.noise_shape[0] is None)):
            restore.append((gen, {"dropout": None}))  # None: drop the instance override
            gen.dropout = sampler
    try:
        yield model
    finally:
        for obj, attrs in restore:
            for name, value in attrs.items():
                if value is None:  # an instance override of a method
                    delattr(obj, name)
                else:
                    setattr(obj, name, value)


def _share_weighted(compute_loss):
    """``compute_loss`` times ``replicas × local batch / global batch``.

    Keras returns ``local mean / replicas`` and sums the replicas' gradients; weighted so,
    the sum is the gradient of the global batch's mean (with equal slices the factor is
    exactly 1). The loss metrics, updated inside, are already weighted by batch size.
    """

    def scaled(x=None, y=None, y_pred=None, sample_weight=None, *args, **kwargs):
        loss = compute_loss(x, y, y_pred, sample_weight, *args, **kwargs)
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync < 2:
            return loss
        n = tf.cast(tf.shape(tf.nest.flatten(y_pred)[0])[0], tf.float32)
        total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, n)
        share = tf.math.divide_no_nan(n * float(ctx.num_replicas_in_sync), total)
        return loss * tf.cast(share, loss.dtype)

    return scaled


def _synchronize(bn, unbiased):
    """Makes a BatchNormalization layer normalize with the global batch's statistics and
    keep moving statistics as it does on one device (``unbiased``: the fused kernel's
    moving variance, which averages the Bessel-corrected batch variance)."""
    calculate, assign = bn._calculate_mean_and_var, bn._assign_moving_average
    factors = {}  # thread (replica) -> Bessel factor n / (n - 1) of the global batch

    def mean_and_var(inputs, reduction_axes, keep_dims, mask=None):
        # Two passes, as tf.nn.moments on one device: the global mean first, then the
        # mean squared deviation from it. (Keras' synchronized path takes E[x²] - E[x]²,
        # which cancels catastrophically in float32 when the mean dwarfs the spread, as
        # on raw audio features: its batch statistics were off by percents.)
        ctx = tf.distribute.get_replica_context()
        if mask is not None or ctx is None:  # Keras' own path (masks are never fused)
            factors[threading.get_ident()] = 1.0
            return calculate(inputs, reduction_axes, keep_dims, mask=mask)
        x = tf.cast(inputs, tf.float32)
        local_sum = tf.reduce_sum(x, axis=reduction_axes, keepdims=True)
        local_n = tf.cast(tf.size(x), tf.float32) / tf.cast(tf.size(local_sum), tf.float32)
        n = ctx.all_reduce(tf.distribute.ReduceOp.SUM, local_n)
        mean = tf.math.divide_no_nan(ctx.all_reduce(tf.distribute.ReduceOp.SUM, local_sum), n)
        squares = tf.reduce_sum(tf.math.squared_difference(x, tf.stop_gradient(mean)),
                                axis=reduction_axes, keepdims=True)
        variance = tf.math.divide_no_nan(ctx.all_reduce(tf.distribute.ReduceOp.SUM, squares), n)
        if not keep_dims:
            mean, variance = tf.squeeze(mean, reduction_axes), tf.squeeze(variance, reduction_axes)
        factors[threading.get_ident()] = n / tf.maximum(n - 1.0, 1.0) if unbiased else 1.0
        return tf.cast(mean, inputs.dtype), tf.cast(variance, inputs.dtype)

    def moving_average(variable, value, momentum, inputs_size):
        # The fused kernel (one device) averages the unbiased batch variance; the
        # statistics above are the biased one. And every replica updates its copy
        # (the statistics are global), also one with an empty slice of a short batch.
        if variable is bn.moving_variance:
            value = value * tf.cast(factors[threading.get_ident()], value.dtype)
        return assign(variable, value, momentum, None)

    bn.synchronized, bn.fused = True, False  # the fused kernel has no all-reduce
    bn._calculate_mean_and_var, bn._assign_moving_average = mean_and_var, moving_average


def _layers(model):
    seen, out = set(), []
    for layer in [model] + list(getattr(model, "submodules", ())):
        if id(layer) not in seen:
            seen.add(id(layer))
            out.append(layer)
    return out
