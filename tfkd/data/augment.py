"""Training-only augmentation: time shift, background noise, SpecAugment masks.

Augmentation produces a fixed set of K *views* per clip, computed once with a seeded
generator. This keeps it deterministic and compatible with the teacher-output cache:
the teacher's logits are cached per view and each epoch draws one view per clip
(:func:`tfkd.distill.cache.cached_dataset`). Validation and test data are never augmented.
"""

import dataclasses

import numpy as np

__all__ = ["AugmentParams", "waveform_views", "spec_augment"]


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


def _shift(x, s):
    if s > 0:
        return np.concatenate([np.zeros(s, x.dtype), x[:-s]])
    if s < 0:
        return np.concatenate([x[-s:], np.zeros(-s, x.dtype)])
    return x


def waveform_views(clips, params, noise, sample_rate, seed):
    """K augmented views of each clip: ``[N, S]`` → ``[N, K, S]``.

    Args:
      clips: float32 clips ``[N, S]``.
      params: :class:`AugmentParams`.
      noise: list of background-noise recordings (float32, at ``sample_rate``); may be empty.
      sample_rate: the clips' rate.
      seed: the generator seed (the same seed gives the same views).
    """
    rng = np.random.default_rng(seed)
    n, s = clips.shape
    out = np.empty((n, params.views, s), np.float32)
    max_shift = params.time_shift_ms * sample_rate // 1000
    usable = [r for r in noise if len(r) >= s]
    for i in range(n):
        for k in range(params.views):
            if k == 0 and params.keep_clean:
                out[i, k] = clips[i]
                continue
            x = _shift(clips[i], int(rng.integers(-max_shift, max_shift + 1)) if max_shift else 0)
            if usable and rng.random() < params.noise_prob:
                rec = usable[int(rng.integers(len(usable)))]
                off = int(rng.integers(0, len(rec) - s + 1))
                x = x + rng.uniform(*params.noise_volume) * rec[off:off + s]
            out[i, k] = np.clip(x, -1.0, 1.0)
    return out


def spec_augment(features, params, seed):
    """SpecAugment time/frequency masks (Park et al. 2019) on ``[N, K, T, F, 1]`` features.

    View 0 stays unmasked when ``params.keep_clean``; masks are filled with each
    view's mean value.
    """
    if not (params.time_masks or params.freq_masks):
        return features
    rng = np.random.default_rng(seed)
    out = features.copy()
    n, k, t, f = features.shape[:4]
    for i in range(n):
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
