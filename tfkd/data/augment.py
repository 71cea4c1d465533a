"""Training-only augmentation: time shift, background noise, SpecAugment masks.

Augmentation produces a fixed set of K *views* per clip, computed once with a generator
seeded per clip (``(seed, clip id)``), so views are the same whether the clips are
processed all at once or in bounded chunks. This keeps it deterministic and compatible
with the teacher-output cache: the teacher's logits are cached per view and each epoch
draws one view per clip. Validation and test data are never augmented.
"""

import dataclasses

import numpy as np

__all__ = ["AugmentParams", "clip_views", "waveform_views", "spec_augment"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class AugmentParams:
    """Augmentation settings for the training split."""

    views: int = 4
    """K: augmented views per training clip (1 = the clean clip only)."""
    keep_clean: bool = True
    """Make view 0 the un-augmented clip."""
    time_shift_ms: int = 100
    """Largest random shift, in ms, either way (zero-padded)."""
    noise_prob: float = 0.8
    """Probability that a view gets background noise mixed in."""
    noise_volume: tuple = (0.0, 0.1)
    """Range of the noise's gain (uniform)."""
    time_masks: int = 0
    """SpecAugment: time masks per view."""
    time_mask_frames: int = 5
    """SpecAugment: largest time-mask width in frames."""
    freq_masks: int = 0
    """SpecAugment: frequency masks per view."""
    freq_mask_bins: int = 5
    """SpecAugment: largest frequency-mask width in bins."""

    def __post_init__(self):
        if not isinstance(self.views, int) or self.views < 1:
            raise ValueError(f"views: must be an integer >= 1, got {self.views!r}")
        if not 0.0 <= self.noise_prob <= 1.0:
            raise ValueError(f"noise_prob: must be in [0, 1], got {self.noise_prob}")
        lo, hi = self.noise_volume
        if not 0.0 <= lo <= hi:
            raise ValueError(f"noise_volume: need 0 <= low <= high, got {list(self.noise_volume)}")
        if self.time_shift_ms < 0:
            raise ValueError(f"time_shift_ms: must be >= 0, got {self.time_shift_ms}")


def _rng(seed, clip_id):
    # One generator per clip, keyed by (seed, clip id): a clip's views do not depend on
    # which chunk or worker computes them, so the streaming data stage can work in
    # bounded chunks and in parallel and still write the same views.
    return np.random.default_rng((int(seed), int(clip_id)))


def _ids(n, ids):
    ids = np.arange(n) if ids is None else np.asarray(ids)
    if ids.shape != (n,):
        raise ValueError(f"ids: need one id per clip ({n}), got shape {ids.shape}")
    return ids


def clip_views(clip, params, noise, sample_rate, rng, out=None):
    """K augmented views of one clip: ``[S]`` → ``[K, S]``.

    Args:
      clip: a float32 clip ``[S]``.
      params: :class:`AugmentParams`.
      noise: background-noise recordings (float32, at ``sample_rate``); may be empty.
      sample_rate: the clip's rate.
      rng: the clip's ``numpy.random.Generator``.
      out: optional float32 ``[K, S]`` array to write into.

    Returns:
      The views, float32 ``[K, S]``.
    """
    s = len(clip)
    out = np.empty((params.views, s), np.float32) if out is None else out
    max_shift = params.time_shift_ms * sample_rate // 1000
    usable = [r for r in noise if len(r) >= s]
    for k in range(params.views):
        x = out[k]
        if k == 0 and params.keep_clean:
            x[:] = clip
            continue
        shift = int(rng.integers(-max_shift, max_shift + 1)) if max_shift else 0
        # Shift with zero padding, written in place (no temporary arrays).
        if shift > 0:
            x[:shift] = 0.0
            x[shift:] = clip[:s - shift]
        elif shift < 0:
            x[:s + shift] = clip[-shift:]
            x[s + shift:] = 0.0
        else:
            x[:] = clip
        if usable and rng.random() < params.noise_prob:
            rec = usable[int(rng.integers(len(usable)))]
            off = int(rng.integers(0, len(rec) - s + 1))
            x += np.float32(rng.uniform(*params.noise_volume)) * rec[off:off + s]
        np.clip(x, -1.0, 1.0, out=x)
    return out


def waveform_views(clips, params, noise, sample_rate, seed, ids=None):
    """K augmented views of each clip: ``[N, S]`` → ``[N, K, S]``.

    Each clip draws from its own generator keyed by ``(seed, id)``, so any chunk of
    clips, given their ids, gets exactly the views the whole array would get.

    Args:
      clips: float32 clips ``[N, S]``.
      params: :class:`AugmentParams`.
      noise: list of background-noise recordings (float32, at ``sample_rate``); may be empty.
      sample_rate: the clips' rate.
      seed: the generator seed (the same seed gives the same views).
      ids: per-clip ids ``[N]`` (default ``0..N-1``).

    Returns:
      float32 ``[N, K, S]``.
    """
    n, s = clips.shape
    ids = _ids(n, ids)
    out = np.empty((n, params.views, s), np.float32)
    for i in range(n):
        clip_views(clips[i], params, noise, sample_rate, _rng(seed, ids[i]), out=out[i])
    return out


def spec_augment(features, params, seed, ids=None):
    """SpecAugment time/frequency masks (Park et al. 2019) on ``[N, K, T, F, 1]`` features.

    View 0 stays unmasked when ``params.keep_clean``; masks are filled with each
    view's mean value. Like :func:`waveform_views`, each clip draws from a generator
    keyed by ``(seed, id)``, so chunks give the same masks as the whole array.

    Args:
      features: float32 ``[N, K, T, F, 1]``.
      params: :class:`AugmentParams`.
      seed: the generator seed.
      ids: per-clip ids ``[N]`` (default ``0..N-1``).

    Returns:
      The masked features (a copy; the input is unchanged).
    """
    if not (params.time_masks or params.freq_masks):
        return features
    n, k, t, f = features.shape[:4]
    ids = _ids(n, ids)
    out = features.copy()
    for i in range(n):
        rng = _rng(seed, ids[i])
        for v in range(k):
            if v == 0 and params.keep_clean:
                continue
            fill = out[i, v].mean()
            for _ in range(params.time_masks):
                w = int(rng.integers(0, params.time_mask_frames + 1))
                t0 = int(rng.integers(0, max(1, t - w)))
                out[i, v, t0:t0 + w] = fill
            for _ in range(params.freq_masks):
                w = int(rng.integers(0, params.freq_mask_bins + 1))
                f0 = int(rng.integers(0, max(1, f - w)))
                out[i, v, :, f0:f0 + w] = fill
    return out
