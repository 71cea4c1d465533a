"""The on-disk feature store: sharded TFRecord files plus a small JSON manifest.

Layout of a store folder (local, NFS or ``gs://``; all I/O goes through ``tf.io.gfile``)::

    manifest.json                 written last: its presence marks a complete store
    train-00000.tfrecord ...      one record per clip: all K views, label, clip id, key
    validation-00000.tfrecord ...
    test-00000.tfrecord ...

Why TFRecord rather than ``.npy`` shards: ``tf.data`` reads it natively and in
parallel from every file system TensorFlow knows (``TFRecordDataset`` under
``interleave``), a shard never has to be loaded whole, and multi-worker input sharding
works on the file list. One record holds all K views of a clip, so the reader draws one
view per clip per epoch without a second pass, and a record carries the clip id so that
cached teacher logits join by ``(clip, view)``.

The manifest holds the format version, the label list, the feature settings and shape,
and per split: the clip count, the views per clip, counts per label, the unreadable
files skipped, and each shard's file name, clip count, size and SHA-256.
"""

import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from tfkd.data import frontend

__all__ = ["FeatureStore", "StoreError", "write_store", "join_logits", "MANIFEST", "FORMAT",
           "DEFAULT_SHARD_CLIPS", "DEFAULT_SHUFFLE_BUFFER"]

FORMAT = "tfkd-feature-store"
VERSION = 1
MANIFEST = "manifest.json"
#: Clips per shard: 1024 clips × 4 views of 49×40 float32 features is about 32 MB.
DEFAULT_SHARD_CLIPS = 1024
#: Clips in the training shuffle buffer (one view each: 2048 × 7.8 KB ≈ 16 MB).
DEFAULT_SHUFFLE_BUFFER = 2048
_BLOCK = 1 << 22


class StoreError(ValueError):
    """A feature store that cannot be read as asked; the message names the file."""


def _join(folder, name):
    folder = os.fspath(folder)
    return folder.rstrip("/") + "/" + name if "://" in folder else os.path.join(folder, name)


def _sha256(path):
    h = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        while True:
            block = f.read(_BLOCK)
            if not block:
                return h.hexdigest()
            h.update(block)


def _example(x, y, clip, key):
    f = tf.train.Feature
    return tf.train.Example(features=tf.train.Features(feature={
        "x": f(bytes_list=tf.train.BytesList(value=[x.tobytes()])),
        "y": f(int64_list=tf.train.Int64List(value=[int(y)])),
        "clip": f(int64_list=tf.train.Int64List(value=[int(clip)])),
        "key": f(bytes_list=tf.train.BytesList(value=[key.encode("utf-8")])),
    })).SerializeToString()


def _write_split(folder, split, chunks, labels, shard_clips):
    """Writes one split's chunks as shards; returns the split's manifest entry."""
    shards, counts = [], np.zeros(len(labels), np.int64)
    n, views, skipped, shape = 0, None, 0, None
    writer, name, in_shard = None, None, 0

    def close():
        writer.close()
        path = _join(folder, name)
        shards.append({"file": name, "clips": in_shard, "bytes": int(tf.io.gfile.stat(path).length),
                       "sha256": _sha256(path)})

    for chunk in chunks:
        x = np.ascontiguousarray(chunk.x, np.float32)
        skipped += int(chunk.skipped)
        if not len(x):
            continue
        if views is None:
            views, shape = int(x.shape[1]), tuple(int(d) for d in x.shape[2:])
        elif x.shape[1:] != (views,) + shape:
            raise StoreError(f"store: {split} chunk of shape {x.shape[1:]}, expected {(views,) + shape}")
        for i in range(len(x)):
            if writer is None:
                name = f"{split}-{len(shards):05d}.tfrecord"
                writer, in_shard = tf.io.TFRecordWriter(_join(folder, name)), 0
            writer.write(_example(x[i], chunk.y[i], n, chunk.keys[i]))
            counts[int(chunk.y[i])] += 1
            n += 1
            in_shard += 1
            if in_shard == shard_clips:
                close()
                writer = None
    if writer is not None:
        close()
    return {"clips": n, "views": views or 0, "skipped": skipped, "shards": shards,
            "counts": {labels[i]: int(c) for i, c in enumerate(counts)}}


def write_store(folder, splits, *, labels, params, meta=None, shard_clips=DEFAULT_SHARD_CLIPS):
    """Writes a feature store, split by split, from streams of feature chunks.

    Memory stays at a chunk's size whatever the number of clips.

    Args:
      folder: the store folder (created; local path or any ``tf.io.gfile`` URL).
      splits: ``{split: iterable of tfkd.data.stream.Chunk}``, written in this order.
      labels: the label list (the ``y`` values index it).
      params: the :class:`tfkd.data.frontend.FeatureParams` the features were made with.
      meta: extra JSON-able facts for the manifest (seed, augmentation settings).
      shard_clips: clips per shard file.

    Returns:
      The :class:`FeatureStore`.

    Raises:
      StoreError: chunks of one split disagree in shape.
    """
    if not isinstance(shard_clips, int) or shard_clips < 1:
        raise StoreError(f"store: shard_clips must be an integer >= 1, got {shard_clips!r}")
    tf.io.gfile.makedirs(folder)
    labels = list(labels)
    manifest = {"format": FORMAT, "version": VERSION, "labels": labels,
                "features": params.to_dict(), "feature_shape": list(frontend.feature_shape(params)),
                "dtype": "float32", "meta": meta or {}, "splits": {}}
    for split, chunks in splits.items():
        manifest["splits"][split] = _write_split(folder, split, chunks, labels, shard_clips)
    tmp = _join(folder, f".{MANIFEST}.tmp")
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tf.io.gfile.rename(tmp, _join(folder, MANIFEST), overwrite=True)
    return FeatureStore(folder, manifest)


def join_logits(ds, logits):
    """Adds ``logits[clip, view]`` to each batch of :meth:`FeatureStore.batches`.

    Args:
      ds: batches with ``clip`` (and ``view``, for one drawn view per clip).
      logits: float32 ``[N, K, C]`` (by clip and view) or ``[N, C]`` (by clip).

    Returns:
      The batches with a ``logits`` entry ``[B, C]``.
    """
    table = tf.constant(np.asarray(logits, np.float32))
    if table.shape.rank == 3:
        def add(b):
            return {**b, "logits": tf.gather_nd(table, tf.stack([b["clip"], b["view"]], -1))}
    else:
        def add(b):
            return {**b, "logits": tf.gather(table, b["clip"])}
    return ds.map(add)


class FeatureStore:
    """A written feature store, read through ``tf.data``.

    Args:
      folder: the store folder.
      manifest: the parsed manifest (use :meth:`open` to read it from the folder).

    Raises:
      StoreError: the manifest is of another format or version.
    """

    def __init__(self, folder, manifest):
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise StoreError(f"store: {_join(folder, MANIFEST)} is not a {FORMAT} v{VERSION} manifest")
        self.folder = os.fspath(folder)
        self.manifest = manifest

    @classmethod
    def open(cls, folder):
        """Reads the store in ``folder``.

        Raises:
          StoreError: there is no manifest (the data stage did not finish) or it is unreadable.
        """
        path = _join(folder, MANIFEST)
        if not tf.io.gfile.exists(path):
            raise StoreError(f"store: no {MANIFEST} in {folder} (was the data stage finished?)")
        try:
            with tf.io.gfile.GFile(path, "r") as f:
                manifest = json.loads(f.read())
        except (ValueError, tf.errors.OpError) as e:
            raise StoreError(f"store: cannot read {path}: {e}") from None
        return cls(folder, manifest)

    # -- facts from the manifest ----------------------------------------------------------

    @property
    def labels(self):
        """The label list, in model order."""
        return list(self.manifest["labels"])

    @property
    def params(self):
        """The :class:`tfkd.data.frontend.FeatureParams` of the stored features."""
        return frontend.FeatureParams.from_dict(self.manifest["features"])

    @property
    def feature_shape(self):
        """One view's shape ``(frames, width, 1)``."""
        return tuple(self.manifest["feature_shape"])

    @property
    def splits(self):
        """The stored split names."""
        return list(self.manifest["splits"])

    def _split(self, split):
        try:
            return self.manifest["splits"][split]
        except KeyError:
            raise StoreError(f"store: no split {split!r} in {self.folder} "
                             f"(has {', '.join(self.splits)})") from None

    def clips(self, split):
        """Clips in a split."""
        return int(self._split(split)["clips"])

    def views(self, split):
        """Views per clip in a split."""
        return int(self._split(split)["views"])

    def counts(self, split):
        """``{label: clips}`` of a split."""
        return dict(self._split(split)["counts"])

    def files(self, split):
        """A split's shard paths, in write order."""
        return [_join(self.folder, s["file"]) for s in self._split(split)["shards"]]

    def verify(self, splits=None):
        """Checks every shard against the manifest's SHA-256.

        Args:
          splits: the splits to check (default: all).

        Raises:
          StoreError: a shard is missing, changed or corrupt (the message names it).
        """
        for split in splits or self.splits:
            for shard in self._split(split)["shards"]:
                path = _join(self.folder, shard["file"])
                if not tf.io.gfile.exists(path):
                    raise StoreError(f"store: shard {shard['file']} is missing from {self.folder}")
                if _sha256(path) != shard["sha256"]:
                    raise StoreError(f"store: shard {shard['file']} in {self.folder} does not match "
                                     f"its manifest checksum (changed or corrupt)")

    # -- tf.data ---------------------------------------------------------------------------

    def records(self, split, *, shuffle=False, seed=0, shard=None, cycle_length=4):
        """Serialized records of a split (one per clip), unbatched.

        Args:
          split: the split.
          shuffle: reshuffle the shard order every epoch and interleave ``cycle_length``
            shards; otherwise the records come in clip-id order.
          seed: the shuffle seed.
          shard: ``(count, index)``: keep this worker's part only (whole shard files when
            there are at least ``count`` of them, else every ``count``-th record).
          cycle_length: shards read at once when shuffling.

        Returns:
          A ``tf.data.Dataset`` of scalar strings.
        """
        files = self.files(split)
        ds = tf.data.Dataset.from_tensor_slices(files or [""]).take(len(files))
        by_file = shard is not None and len(files) >= shard[0]
        if by_file:
            ds = ds.shard(*shard)
        if shuffle:
            ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
            ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=max(1, min(cycle_length, len(files))),
                               block_length=16)
        else:
            ds = ds.flat_map(tf.data.TFRecordDataset)
        if shard is not None and not by_file:
            ds = ds.shard(*shard)
        return ds

    def batches(self, split, batch_size, *, view=0, shuffle=False, seed=0,
                shuffle_buffer=DEFAULT_SHUFFLE_BUFFER, shard=None, drop_remainder=False):
        """Batches of a split as dicts ``{x, y, clip, view}``.

        Args:
          split: the split.
          batch_size: the batch size (the global one; see :mod:`tfkd.distribute`).
          view: ``"random"`` (one view per clip, drawn anew each epoch from ``seed``),
            a view number (e.g. 0, the clean clip), or ``"all"`` (``x`` is ``[B, K, ...]``,
            no ``view`` entry).
          shuffle: reshuffle shards and clips each epoch (bounded buffer of
            ``shuffle_buffer`` clips); deterministic under ``seed``.
          seed: order and view seed.
          shuffle_buffer: clips held in the shuffle buffer.
          shard: see :meth:`records`.
          drop_remainder: drop a last partial batch.

        Returns:
          A ``tf.data.Dataset``; ``x`` float32, ``y``/``clip``/``view`` int64.

        Raises:
          StoreError: the view does not exist.
        """
        k = self.views(split)
        if view not in ("random", "all") and not (isinstance(view, int) and 0 <= view < k):
            raise StoreError(f"store: view must be 'random', 'all' or 0..{k - 1} for {split}, "
                             f"got {view!r}")
        shape = (k,) + self.feature_shape
        view_bytes = int(np.prod(self.feature_shape)) * 4
        spec = {"x": tf.io.FixedLenFeature([], tf.string), "y": tf.io.FixedLenFeature([], tf.int64),
                "clip": tf.io.FixedLenFeature([], tf.int64)}
        ds = self.records(split, shuffle=shuffle, seed=seed, shard=shard)
        if shuffle:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        rnd = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(batch_size)

        def parse(serialized, r):
            # Parses a whole batch at once: per-record maps cost more than a student step.
            p = tf.io.parse_example(serialized, spec)
            out = {"y": p["y"], "clip": p["clip"]}
            if view == "all":
                out["x"] = tf.reshape(tf.io.decode_raw(p["x"], tf.float32), (-1,) + shape)
                return out
            v = (tf.math.floormod(r[:tf.shape(p["y"])[0]], k) if view == "random"
                 else tf.fill(tf.shape(p["y"]), tf.constant(view, tf.int64)))
            # Cuts the chosen view's bytes out before decoding: 1/K of the copying.
            one = tf.strings.substr(p["x"], tf.cast(v, tf.int32) * view_bytes,
                                    tf.fill(tf.shape(v), view_bytes))
            out["x"] = tf.reshape(tf.io.decode_raw(one, tf.float32), (-1,) + self.feature_shape)
            out["view"] = v
            return out

        ds = tf.data.Dataset.zip((ds, rnd)).map(parse).prefetch(2)
        options = tf.data.Options()
        # Already sharded per worker: no second, automatic sharding. Otherwise a
        # multi-worker strategy shards by element (a split may have fewer files than workers).
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF if shard is not None
            else tf.data.experimental.AutoShardPolicy.DATA)
        # Two input threads, no autotuning: reading and parsing a batch is light, and on
        # a small CPU more threads only take cores from the training step.
        options.threading.private_threadpool_size = 2
        options.autotune.enabled = False
        return ds.with_options(options)

    def labels_of(self, split):
        """A split's labels ``[N]`` (int32) in clip-id order."""
        spec = {"y": tf.io.FixedLenFeature([], tf.int64)}
        ds = self.records(split).batch(4096).map(lambda s: tf.io.parse_example(s, spec)["y"])
        parts = [b.numpy() for b in ds]
        return np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)

    def keys(self, split):
        """A split's source keys (file paths relative to the data folder) in clip-id order."""
        spec = {"key": tf.io.FixedLenFeature([], tf.string)}
        ds = self.records(split).batch(4096).map(lambda s: tf.io.parse_example(s, spec)["key"])
        return [k.decode("utf-8") for b in ds for k in b.numpy()]

    def predict(self, model, split, batch_size=256):
        """Runs ``model`` (inference mode) over every view of a split.

        This is how the teacher-logit cache is filled: the store streams through the
        teacher, and only the logits (``N × K × C`` floats) stay in memory.

        Args:
          model: a Keras model taking one view ``[B, frames, width, 1]``.
          split: the split.
          batch_size: clips per inference batch.

        Returns:
          float32 ``[N, K, C]`` in clip-id order.
        """
        k = self.views(split)
        per_clip = max(1, batch_size // k)
        ds = self.batches(split, per_clip, view="all").map(
            lambda b: tf.reshape(b["x"], (-1,) + self.feature_shape))
        n = self.clips(split)
        if n == 0:
            return np.zeros((0, k, int(model.output_shape[-1])), np.float32)
        flat = np.asarray(model.predict(ds, verbose=0), np.float32)
        return flat.reshape(n, k, flat.shape[-1])

    def sample(self, split, n, seed=0, view=0):
        """Features of ``n`` clips drawn at random (without replacement), e.g. for calibration.

        Args:
          split: the split.
          n: clips wanted (all when the split has fewer).
          seed: the draw's seed.
          view: the view to take (0 = the clean clip).

        Returns:
          float32 ``[min(n, N), frames, width, 1]`` in clip-id order.
        """
        total = self.clips(split)
        keep = np.zeros(total, bool)
        keep[np.random.default_rng(seed).choice(total, size=min(n, total), replace=False)] = True
        mask = tf.constant(keep)
        ds = (self.batches(split, 256, view=view)
              .map(lambda b: tf.boolean_mask(b["x"], tf.gather(mask, b["clip"]))))
        parts = [x.numpy() for x in ds]
        return np.concatenate(parts) if parts else np.zeros((0,) + self.feature_shape, np.float32)
