"""Streaming featurization: clips → K augmented views → features, in bounded chunks.

The data stage never holds a whole split: a source yields :class:`Clips` of at most
``chunk`` clips, :func:`featurize` turns each into a :class:`Chunk` of features, and
the feature store writes it to disk. Reading and augmenting the next chunk (NumPy, a
worker thread) overlaps with computing the features of the current one (TensorFlow's
own threads), so both cores work. Features come from :func:`tfkd.data.frontend.compute`,
the one feature path that training, evaluation and export checks share.
"""

import collections
import concurrent.futures
import dataclasses
import os

import numpy as np

from tfkd.data import augment, frontend, speech, store

__all__ = ["Clips", "Chunk", "folder_clips", "tfds_clips", "featurize", "build_store",
           "DEFAULT_CHUNK"]

#: Clips per chunk: 256 clips × 4 views × 1 s at 16 kHz is 16 MB of waveforms.
DEFAULT_CHUNK = 256


@dataclasses.dataclass(frozen=True)
class Clips:
    """A chunk of waveforms as read from a source."""

    waves: np.ndarray
    """float32 ``[c, clip_samples]``."""
    labels: np.ndarray
    """int32 ``[c]``: indices into the run's label list."""
    keys: tuple
    """Where each clip came from (a path relative to the data folder, or a TFDS id)."""
    ids: np.ndarray
    """Each clip's position in its source: the augmentation seed key, stable under chunking."""
    skipped: int = 0
    """Unreadable files left out of this chunk."""


@dataclasses.dataclass(frozen=True)
class Chunk:
    """A chunk of features, ready for the store."""

    x: np.ndarray
    """float32 ``[c, K, frames, width, 1]``: K views per clip (view 0 the clean clip)."""
    y: np.ndarray
    """int32 ``[c]`` labels."""
    keys: tuple
    """The clips' source keys (see :class:`Clips`)."""
    skipped: int = 0
    """Unreadable files left out of this chunk."""


def _key(index, entry):
    if entry.path is not None:
        return os.path.relpath(entry.path, index.root).replace(os.sep, "/")
    k, start, volume = entry.noise
    return f"{speech.SILENCE}/noise{k}@{start:.6f}x{volume:.6f}"


def folder_clips(index, entries, sample_rate, clip_samples, *, skip_bad=False, noise=None,
                 chunk=DEFAULT_CHUNK):
    """Reads the entries of a scanned folder chunk by chunk.

    Args:
      index: the :class:`tfkd.data.speech.Index`.
      entries: the entries to read, in the order to store them.
      sample_rate, clip_samples: the model's rate and clip length.
      skip_bad: leave out unreadable files (counted) instead of raising.
      noise: background noise from :func:`tfkd.data.speech.load_noise` (for silence).
      chunk: clips per chunk.

    Yields:
      :class:`Clips`.

    Raises:
      tfkd.data.wav.AudioError: a file is unreadable and ``skip_bad`` is false.
    """
    for start in range(0, len(entries), chunk):
        part = entries[start:start + chunk]
        waves, labels, skipped = speech.load_waves(index, part, sample_rate, clip_samples,
                                                   skip_bad=skip_bad, noise=noise)
        ids = np.arange(start, start + len(part))
        if skipped:  # rare: find which ones, one clip at a time
            kept = [i for i, e in enumerate(part)
                    if speech.load_waves(index, [e], sample_rate, clip_samples, skip_bad=True,
                                         noise=noise)[2] == 0]
            part, ids = [part[i] for i in kept], ids[kept]
        yield Clips(waves, labels, tuple(_key(index, e) for e in part), ids, skipped)


def tfds_clips(examples, chunk=DEFAULT_CHUNK, name="tfds"):
    """Groups a stream of ``(wave, label)`` pairs (e.g. from ``speech.tfds_waves``) into chunks.

    Args:
      examples: an iterable of ``(float32 [clip_samples], int label)``.
      chunk: clips per chunk.
      name: the key prefix (keys are ``name:position``).

    Yields:
      :class:`Clips`.
    """
    waves, labels, pos = [], [], 0
    for wave, label in examples:
        waves.append(wave)
        labels.append(label)
        if len(waves) == chunk:
            yield _clips(waves, labels, pos, name)
            pos += len(waves)
            waves, labels = [], []
    if waves:
        yield _clips(waves, labels, pos, name)


def _clips(waves, labels, pos, name):
    ids = np.arange(pos, pos + len(waves))
    return Clips(np.stack(waves).astype(np.float32), np.asarray(labels, np.int32),
                 tuple(f"{name}:{i}" for i in ids), ids)


def featurize(clips, params, *, augment_params=None, noise=(), seed=0, prefetch=2):
    """Turns chunks of clips into chunks of features, K augmented views each.

    Each clip's views and masks are drawn from generators keyed by ``(seed, id)`` and
    ``(seed + 1, id)`` (see :mod:`tfkd.data.augment`), so the features do not depend on
    the chunk size.

    Args:
      clips: an iterable of :class:`Clips`.
      params: the :class:`tfkd.data.frontend.FeatureParams`.
      augment_params: :class:`tfkd.data.augment.AugmentParams`, or None for one clean view.
      noise: background-noise recordings for augmentation.
      seed: the augmentation seed.
      prefetch: chunks read and augmented ahead, in a worker thread.

    Yields:
      :class:`Chunk`.
    """
    shape = frontend.feature_shape(params)

    def read_next():
        c = next(source, None)
        if c is None:
            return None
        if augment_params is None:
            return c, c.waves[:, None]
        return c, augment.waveform_views(c.waves, augment_params, noise, params.sample_rate, seed,
                                         ids=c.ids)

    source = iter(clips)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        # One worker runs the jobs in order, so the source iterator is never read concurrently.
        pending = collections.deque()

        def submit():
            pending.append(pool.submit(read_next))

        for _ in range(max(1, prefetch)):
            submit()
        while True:
            item = pending.popleft().result()
            if item is None:
                return
            submit()
            c, w = item
            n, k, s = w.shape
            x = frontend.compute(w.reshape(n * k, s), params).reshape((n, k) + shape)
            if augment_params is not None:
                x = augment.spec_augment(x, augment_params, seed + 1, ids=c.ids)
            yield Chunk(x, c.labels, c.keys, c.skipped)


def build_store(folder, data, params, seed, *, chunk=DEFAULT_CHUNK,
                shard_clips=store.DEFAULT_SHARD_CLIPS):
    """The streaming data stage: reads, augments and featurizes every split into a store.

    The training split is stored in a seeded random order (so that shards mix labels),
    with ``data.augment.views`` views per clip; validation and test keep the index order
    with one clean view. Memory stays at a few chunks whatever the number of clips.

    Args:
      folder: the store folder.
      data: the data settings (``tfkd.config.DataConfig``: path, labels, split shares,
        skip_bad_files, tfds_data_dir, augment).
      params: the :class:`tfkd.data.frontend.FeatureParams`.
      seed: the run's data seed (split subsampling, order, augmentation).
      chunk: clips per chunk.
      shard_clips: clips per shard file.

    Returns:
      The written :class:`tfkd.data.store.FeatureStore`.

    Raises:
      tfkd.data.speech.DataError: the folder cannot be used as asked.
      tfkd.data.wav.AudioError: an unreadable file, unless ``data.skip_bad_files``.
    """
    rate, samples = params.sample_rate, params.clip_samples
    if data.path is not None:
        index = speech.scan(data.path, data.labels, validation_pct=data.validation_pct,
                            testing_pct=data.testing_pct, unknown_share=data.unknown_share,
                            silence_share=data.silence_share, seed=seed)
        labels = list(index.labels)
        noise = speech.load_noise(index.noise_files, rate, skip_bad=data.skip_bad_files)

        def source(split):
            entries = index.split(split)
            if split == "train":
                order = np.random.default_rng(seed).permutation(len(entries))
                entries = [entries[i] for i in order]
            return folder_clips(index, entries, rate, samples, skip_bad=data.skip_bad_files,
                                noise=noise, chunk=chunk)
    else:
        labels, noise = list(data.labels or speech.KWS12), []

        def source(split):
            return tfds_clips(speech.tfds_waves(split, tuple(labels), rate, samples,
                                                data_dir=data.tfds_data_dir), chunk=chunk,
                              name=f"tfds:{split}")
    splits = {split: featurize(source(split), params, seed=seed, noise=noise,
                               augment_params=data.augment if split == "train" else None)
              for split in speech.SPLITS}
    meta = {"seed": int(seed), "source": data.path or "tfds:speech_commands",
            "augment": {k: list(v) if isinstance(v, tuple) else v
                        for k, v in dataclasses.asdict(data.augment).items()}}
    return store.write_store(folder, splits, labels=labels, params=params, meta=meta,
                             shard_clips=shard_clips)
