"""The run's :class:`tfkd.data.dataset.Data`, backed by the on-disk feature store.

Training batches stream from the store's shards through ``tf.data`` (one augmented view
per clip per epoch, a bounded shuffle buffer); validation and test stream the same way.
No method holds all training features in memory except :meth:`StoreData.train_arrays`,
which small notebooks use and the pipeline never calls. Teacher logits, which are small
(``N × K × classes`` floats), are computed by streaming the store through the teacher
and join the batches by ``(clip id, view)``.
"""

import numpy as np
import tensorflow as tf

from tfkd import distribute
from tfkd.data import frontend
from tfkd.data.dataset import INPUTS_KEY, TEACHER_LOGITS_KEY, SPLITS
from tfkd.data.store import DEFAULT_SHUFFLE_BUFFER, FeatureStore, join_logits

__all__ = ["StoreData", "SHARD_MODES"]

#: How training batches are split between the workers of a cluster: ``batch`` (every
#: worker reads the same stream and keeps its slice of each global batch: the same
#: steps as one process) or ``files`` (each worker reads its own shard files: less
#: reading per worker, but other batches than one process and whole batches only).
SHARD_MODES = ("batch", "files")


class StoreData:
    """Features and labels of one run, read from a :class:`tfkd.data.store.FeatureStore`.

    Has the members of :class:`tfkd.data.dataset.Data` (the stages use only those).

    Args:
      store: the :class:`FeatureStore` (or its folder).
      shuffle_buffer: clips in the training shuffle buffer.
      shard: how the training batches are split between the workers of a multi-worker
        cluster (see :data:`SHARD_MODES` and :meth:`train_dataset`).

    Raises:
      ValueError: an unknown ``shard`` mode.
    """

    def __init__(self, store, shuffle_buffer=DEFAULT_SHUFFLE_BUFFER, shard="batch"):
        if shard not in SHARD_MODES:
            raise ValueError(f"distribute.shard: must be one of {', '.join(SHARD_MODES)}, "
                             f"got {shard!r}")
        self.store = store if isinstance(store, FeatureStore) else FeatureStore.open(store)
        self.shuffle_buffer = shuffle_buffer
        self.shard = shard
        self.labels = tuple(self.store.labels)
        self.features = self.store.params

    @property
    def num_train(self):
        """Training clips (N; each has K views)."""
        return self.store.clips("train")

    @property
    def views(self):
        """Augmented views per training clip (K)."""
        return self.store.views("train")

    @property
    def input_shape(self):
        """The model input shape ``(frames, channels, 1)``."""
        return frontend.feature_shape(self.features)

    def steps_per_epoch(self, batch_size):
        """Training steps per epoch (one view per clip; ``batch_size`` is the global batch)."""
        workers = distribute.worker()[0]
        if workers > 1 and self.shard == "files":
            return self._worker_batches(batch_size, workers) * workers
        return int(np.ceil(self.num_train / batch_size))

    def _worker_batches(self, batch_size, workers):
        n = self.num_train // workers // batch_size
        if n < 1:
            raise ValueError(f"batch_size: {batch_size} is more than the {self.num_train} training "
                             f"clips share per worker ({workers} workers)")
        return n

    @staticmethod
    def _keras(ds, with_logits):
        # int32 labels, as the in-memory Data gives them.
        if with_logits:
            return ds.map(lambda b: ({INPUTS_KEY: b["x"], TEACHER_LOGITS_KEY: b["logits"]},
                                     tf.cast(b["y"], tf.int32)))
        return ds.map(lambda b: (b["x"], tf.cast(b["y"], tf.int32)))

    def train_dataset(self, batch_size, seed, logits=None):
        """Training batches, one augmented view per clip per epoch, from the store.

        ``batch_size`` is the global batch. In a multi-worker cluster (``TF_CONFIG``) with
        ``shard="batch"`` (the default) every worker reads the same seeded stream of global
        batches and the strategy keeps each replica's consecutive slice of every one
        (``tf.data``'s rebatching, then sharding by element): the union of the replicas'
        batches at each step is the one-process batch, the short last one included
        (a replica may get an empty slice of it). With ``shard="files"`` each worker reads
        only its own shard files, whole batches only, as many on every worker.

        Args:
          batch_size: the global batch size.
          seed: clip order and view seed.
          logits: optional cached teacher logits ``[N, K, C]`` from :meth:`logits`.

        Returns:
          A dataset of ``(x, y)`` or ``({"inputs", "teacher_logits"}, y)`` batches.
        """
        workers, index = distribute.worker()
        by_files = workers > 1 and self.shard == "files"
        ds = self.store.batches("train", batch_size, view="random", shuffle=True, seed=seed,
                                shuffle_buffer=self.shuffle_buffer,
                                shard=(workers, index) if by_files else None,
                                drop_remainder=by_files)
        if by_files:
            # Every worker must take the same number of steps, none of them on an empty
            # batch (the strategy splits each global batch between the replicas): whole
            # batches only, as many on each worker.
            ds = ds.take(self._worker_batches(batch_size, workers))
        if logits is not None:
            ds = join_logits(ds, logits)
        return self._keras(ds, logits is not None).prefetch(2)

    def _check(self, split):
        if split not in SPLITS:
            raise ValueError(f"split: must be one of {', '.join(SPLITS)}, got {split!r}")

    def dataset(self, split, batch_size, logits=None):
        """Validation or test batches in file order, with optional cached logits ``[N, C]``."""
        self._check(split)
        ds = self.store.batches(split, batch_size, view=0)
        if logits is not None:
            ds = join_logits(ds, logits)
        return self._keras(ds, logits is not None)

    def arrays(self, split):
        """``(x, y)`` of the validation or test split, read from the store.

        For the checks that need arrays (LiteRT and TFLite Micro scoring, golden
        vectors); training streams these splits through :meth:`dataset` instead.
        """
        self._check(split)
        parts = [(b["x"].numpy(), b["y"].numpy()) for b in self.store.batches(split, 1024, view=0)]
        if not parts:
            return np.zeros((0,) + self.input_shape, np.float32), np.zeros(0, np.int32)
        return (np.concatenate([p[0] for p in parts]),
                np.concatenate([p[1] for p in parts]).astype(np.int32))

    def train_arrays(self):
        """``(x [N, K, ...], y [N])`` of the whole training split, in memory.

        For small sets (notebooks): the pipeline's stages never call it.
        """
        parts = [(b["x"].numpy(), b["y"].numpy())
                 for b in self.store.batches("train", 1024, view="all")]
        if not parts:
            return np.zeros((0, self.views) + self.input_shape, np.float32), np.zeros(0, np.int32)
        return (np.concatenate([p[0] for p in parts]),
                np.concatenate([p[1] for p in parts]).astype(np.int32))

    def logits(self, model, split="train", batch_size=256):
        """``model``'s outputs over every training view ``[N, K, C]`` or an eval split ``[N, C]``,
        computed by streaming the store through the model."""
        if split != "train":
            self._check(split)
            return self.store.predict(model, split, batch_size)[:, 0]
        return self.store.predict(model, "train", batch_size)

    def representative(self, n, seed):
        """``n`` clean training inputs (view 0), drawn without replacement under ``seed``."""
        return self.store.sample("train", n, seed, view=0)

    def verify(self):
        """Checks every shard against the manifest's checksum (see ``FeatureStore.verify``)."""
        self.store.verify()
