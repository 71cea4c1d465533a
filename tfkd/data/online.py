"""Augmentation on the fly: a ``tf.data`` pipeline that makes a fresh view of every clip
every epoch, from the clip files to the features.

The cached mode (:mod:`tfkd.data.augment`) computes K views per clip once, so that the
teacher's logits can be cached per view. *Consistent teaching* (Beyer et al. 2022,
"Knowledge distillation: A good teacher is patient and consistent") instead runs the
live teacher on exactly the batch the student sees, and every batch is new: time
shift, background noise, mixup of two clips and SpecAugment are drawn again each epoch.

How the waveforms get here: the pipeline streams the clip files named by the data
index (:class:`tfkd.data.speech.Entry`), one file per element through
``tf.numpy_function`` with tfkd's own WAV reader, so memory stays flat in the number of
clips (a shuffle buffer of file indices, a few batches in flight, and the
background-noise recordings, which are small). Shift and noise reuse
:func:`tfkd.data.augment.clip_views` (the same distributions as the cached views);
mixup, the features (the same frontend function as :func:`tfkd.data.frontend.compute`,
so clean clips give bit-identical features) and SpecAugment run as TensorFlow ops.

Randomness is seeded and fresh every epoch: each element draws a number from
``tf.data.Dataset.random(seed, rerandomize_each_iteration=True)``, and all of its
random choices derive from that number and the clip's position.

Labels: mixed clips (and unlabelled transfer clips) carry the label ``-1`` (see
:data:`NO_LABEL`): they are for the soft-target loss only. The mixture of two spoken
words has no right one-hot answer, while the teacher's output on the mixture is exactly
what function matching asks the student to reproduce; a sparse integer label also keeps
the Distiller's metrics and its label-using losses (DKD) unchanged. A hard-label loss
that skips them is :class:`tfkd.distill.masked_loss.MaskedSparseCategoricalCrossentropy`.
"""

import dataclasses

import numpy as np

from tfkd.data import augment as augment_lib
from tfkd.data import frontend
from tfkd.data.wav import fit_length, load_clip
from tfkd.lazy_tf import tf

__all__ = ["NO_LABEL", "MixupParams", "online_dataset", "load_entry", "feature_fn",
           "spec_augment_batch", "mixup_batch"]

#: The label of a clip that only the soft-target loss may use (mixtures, transfer clips).
NO_LABEL = -1

# Second seed words that keep the random streams of one batch apart.
_MIX_DRAW, _MIX_WEIGHT, _SPEC = 1, 2, 100


@dataclasses.dataclass(frozen=True, kw_only=True)
class MixupParams:
    """Mixup of two clips of a batch (Zhang et al. 2018), on the waveforms."""

    prob: float = 0.0
    """Share of each batch replaced by a mixture with another clip of the batch (0 = off)."""
    alpha: float = 0.4
    """The mixing weight is drawn from Beta(alpha, alpha); small alpha keeps one clip dominant."""

    def __post_init__(self):
        if isinstance(self.prob, bool) or not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"prob: must be in [0, 1], got {self.prob!r}")
        if isinstance(self.alpha, bool) or not self.alpha > 0:
            raise ValueError(f"alpha: must be > 0, got {self.alpha!r}")


def load_entry(entry, noise, sample_rate, clip_samples):
    """One clip of the index as float32 ``[clip_samples]``, as the data stage reads it.

    Args:
      entry: a :class:`tfkd.data.speech.Entry` (a file, or a synthesized silence slice).
      noise: the background-noise recordings (for silence entries).
      sample_rate, clip_samples: the model's rate and clip length.
    """
    if entry.path is not None:
        return load_clip(entry.path, sample_rate, clip_samples)
    k, start, volume = entry.noise
    if k < 0:
        return np.zeros(clip_samples, np.float32)
    rec = noise[k]
    off = int(start * max(0, len(rec) - clip_samples))
    return (fit_length(rec[off:off + clip_samples], clip_samples) * np.float32(volume)).astype(
        np.float32)


def feature_fn(params):
    """The per-clip feature function of :func:`tfkd.data.frontend.compute`: ``[S]`` → ``[T, F]``."""
    # The very function frontend.compute maps over its clips (frontend has no public
    # per-clip entry yet): one implementation, so online features cannot drift.
    if params.kind == "microfrontend":
        return frontend._microfrontend(params)
    return frontend._spectral(params)


def _seed(r, offset):
    return tf.stack([tf.cast(r, tf.int64), tf.constant(offset, tf.int64)])


def mixup_batch(waves, labels, r, params):
    """Mixes a share of a batch with the next clip of the (shuffled) batch.

    Args:
      waves: float32 ``[B, S]``.
      labels: int32 ``[B]``.
      r: int64 ``[B]`` per-element random numbers (seeds).
      params: :class:`MixupParams`.

    Returns:
      ``(waves, labels, weights)``: mixed clips ``w * x_i + (1 - w) * x_(i+1)`` clipped to
      [-1, 1] with label :data:`NO_LABEL`; ``weights`` ``[B]`` is each clip's own weight
      (1 where unmixed).
    """
    b = tf.shape(waves)[0]
    u = tf.random.stateless_uniform([b], _seed(r[0], _MIX_DRAW))
    g = tf.random.stateless_gamma([2, b], _seed(r[0], _MIX_WEIGHT), alpha=params.alpha)
    w = g[0] / tf.maximum(g[0] + g[1], 1e-12)
    # A batch of one has no partner; mixing a clip with itself would change nothing.
    mixed = (u < params.prob) & (b > 1)
    w = tf.where(mixed, w, 1.0)
    partner = tf.roll(waves, shift=-1, axis=0)
    out = tf.clip_by_value(w[:, None] * waves + (1.0 - w[:, None]) * partner, -1.0, 1.0)
    labels = tf.where(mixed, tf.constant(NO_LABEL, labels.dtype), labels)
    return out, labels, w


def spec_augment_batch(x, r, params):
    """SpecAugment masks on ``[B, T, F]`` features, as :func:`tfkd.data.augment.spec_augment`:
    up to ``time_mask_frames`` / ``freq_mask_bins`` wide, filled with each clip's mean."""
    b, t, f = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    fill = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    masks = [(params.time_mask_frames, t, 1)] * params.time_masks
    masks += [(params.freq_mask_bins, f, 2)] * params.freq_masks
    for n, (widest, size, axis) in enumerate(masks):
        u = tf.random.stateless_uniform([2, b], _seed(r[0], _SPEC + n))
        width = tf.cast(tf.floor(u[0] * (widest + 1)), tf.int32)
        start = tf.cast(tf.floor(u[1] * tf.cast(tf.maximum(1, size - width), tf.float32)), tf.int32)
        pos = tf.range(size)[None, :]
        hit = (pos >= start[:, None]) & (pos < (start + width)[:, None])  # [B, size]
        hit = hit[:, :, None] if axis == 1 else hit[:, None, :]
        x = tf.where(hit, fill, x)
    return x


def online_dataset(entries, features, batch_size, *, noise=(), augment=None, mixup=None,
                   seed=0, shuffle=True, parallel=2):
    """``tf.data`` batches ``(x [B, T, F, 1], y [B])`` augmented afresh every epoch.

    Args:
      entries: :class:`tfkd.data.speech.Entry` list (training clips; transfer clips carry
        label :data:`NO_LABEL`).
      features: the :class:`tfkd.data.frontend.FeatureParams`.
      batch_size: batch size.
      noise: background-noise recordings at ``features.sample_rate`` (float32 arrays),
        for noise mixing and silence entries.
      augment: :class:`tfkd.data.augment.AugmentParams` for shift, noise and SpecAugment
        (``views``/``keep_clean`` do not apply: every draw is augmented), or None for
        clean clips.
      mixup: :class:`MixupParams` or None.
      seed: seed of the order and of every random choice; each epoch draws anew.
      shuffle: reshuffle the clips every epoch.
      parallel: clips read and augmented in parallel.

    Returns:
      A finite ``tf.data.Dataset`` of ``ceil(len(entries) / batch_size)`` batches.

    Raises:
      ValueError: no entries.
    """
    entries = list(entries)
    if not entries:
        raise ValueError("online_dataset: no training clips")
    noise = [np.asarray(n, np.float32) for n in noise]
    sr, s = features.sample_rate, features.clip_samples
    one_view = None if augment is None else dataclasses.replace(augment, views=1, keep_clean=False)
    labels = np.array([e.label for e in entries], np.int32)

    def read(i, r):
        clip = load_entry(entries[int(i)], noise, sr, s)
        if one_view is None:
            return clip
        rng = np.random.default_rng([int(r) & 0xFFFFFFFFFFFFFFFF, int(i)])
        return augment_lib.clip_views(clip, one_view, noise, sr, rng)[0]

    def element(i, r):
        wave = tf.numpy_function(read, [i, r], tf.float32, stateful=False)
        wave.set_shape([s])
        return wave, tf.gather(labels, i), r

    fn = feature_fn(features)

    def finish(waves, y, r):
        if mixup is not None and mixup.prob > 0:
            waves, y, _ = mixup_batch(waves, y, r, mixup)
        x = tf.map_fn(fn, waves, fn_output_signature=tf.float32)
        if augment is not None and (augment.time_masks or augment.freq_masks):
            x = spec_augment_batch(x, r, augment)
        return x[..., None], y

    idx = tf.data.Dataset.range(len(entries))
    if shuffle:
        idx = idx.shuffle(min(len(entries), 100_000), seed=seed, reshuffle_each_iteration=True)
    rnd = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = (tf.data.Dataset.zip((idx, rnd))
          .map(element, num_parallel_calls=parallel, deterministic=True)
          .batch(batch_size)
          .map(finish)
          .prefetch(2))
    options = tf.data.Options()
    options.threading.private_threadpool_size = max(1, parallel)
    options.autotune.enabled = False
    return ds.with_options(options)


class OnlineData:
    """A :class:`tfkd.data.dataset.Data` whose training batches are made on the fly.

    Validation, test, the representative set and everything else come from ``data``
    unchanged; :meth:`train_dataset` streams ``entries`` through :func:`online_dataset`,
    so :func:`tfkd.train.fit.fit` trains on fresh views without knowing it.
    There is no teacher cache in this mode: every batch is new.

    Args:
      data: the run's :class:`tfkd.data.dataset.Data`.
      entries: the training entries (labelled clips, then any transfer clips).
      noise: background-noise recordings at the feature sample rate.
      augment: :class:`tfkd.data.augment.AugmentParams` (None: clean clips).
      mixup: :class:`MixupParams` or None.
    """

    def __init__(self, data, entries, noise=(), augment=None, mixup=None):
        self._data = data
        self.entries = list(entries)
        self.noise = list(noise)
        self.augment = augment
        self.mixup = mixup
        if not self.entries:
            raise ValueError("online data: no training clips")

    def __getattr__(self, name):
        # Everything but the training stream is the wrapped Data's.
        return getattr(self._data, name)

    @property
    def num_train(self):
        """Training clips per epoch (transfer clips included)."""
        return len(self.entries)

    @property
    def unlabelled(self):
        """Training clips with :data:`NO_LABEL` (transfer clips), before mixup."""
        return sum(1 for e in self.entries if e.label < 0)

    def steps_per_epoch(self, batch_size):
        """Training batches per epoch (each clip once)."""
        return int(np.ceil(len(self.entries) / batch_size))

    def train_dataset(self, batch_size, seed, logits=None):
        """Fresh augmented batches every epoch (see :func:`online_dataset`).

        Raises:
          ValueError: ``logits`` given: a cache cannot label views that do not exist yet.
        """
        if logits is not None:
            raise ValueError("distill.mode: consistent makes new views every epoch; "
                             "cached teacher logits cannot label them")
        return online_dataset(self.entries, self._data.features, batch_size, noise=self.noise,
                              augment=self.augment, mixup=self.mixup, seed=seed)

    def logits(self, model, split="train", batch_size=256):
        """Teacher outputs over an evaluation split (the training stream has none)."""
        if split == "train":
            raise ValueError("distill.mode: consistent has no fixed training views to cache")
        return self._data.logits(model, split, batch_size)


def folder_entries(d, fp, seed):
    """The training entries and noise recordings of a folder data set, as the data stage
    reads them (the same scan, split and seed, so the same clips in the same order).

    Args:
      d: the run's ``DataConfig`` (``path`` must be a folder).
      fp: the :class:`tfkd.data.frontend.FeatureParams`.
      seed: the data stage's seed.

    Returns:
      ``(index, entries, noise)``.

    Raises:
      ValueError: ``d.path`` is null (TFDS clips are not files that can be re-read).
    """
    from tfkd.data import speech
    from tfkd.data.wav import AudioError

    if d.path is None:
        raise ValueError("distill.mode: consistent reads the clip files: it needs data.path "
                         "(a folder); the TFDS source is not supported")
    index = speech.scan(d.path, d.labels, validation_pct=d.validation_pct,
                        testing_pct=d.testing_pct, unknown_share=d.unknown_share,
                        silence_share=d.silence_share, seed=seed)
    noise = speech.load_noise(index.noise_files, fp.sample_rate)
    entries = index.split("train")
    if d.skip_bad_files:  # as the data stage: unreadable files are left out
        def readable(e):
            try:
                load_entry(e, noise, fp.sample_rate, fp.clip_samples)
                return True
            except AudioError:
                return False
        entries = [e for e in entries if readable(e)]
    return index, entries, noise
