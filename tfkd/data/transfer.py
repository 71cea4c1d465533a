"""Transfer data: clips that teach through the teacher's soft targets only.

Soft targets need no labels (Hinton et al. 2015 distil on a "transfer set"). Two kinds
of clips are used here, both labelled :data:`tfkd.data.online.NO_LABEL` (-1):

* unlabelled clips from a folder of WAV files (``distill.transfer: PATH``);
* synthetic ones: clips of words outside the label list (those not already drawn as
  ``_unknown_``), and mixtures of two clips (made in :mod:`tfkd.data.online`).

This module finds the clips; the hard-label loss that skips them is
:class:`tfkd.distill.masked_loss.MaskedSparseCategoricalCrossentropy`.
"""

import os

from tfkd.data import speech
from tfkd.data.online import NO_LABEL

__all__ = ["transfer_entries", "other_word_entries"]


def _wavs_under(folder):
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        out += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(".wav")]
    return out


def transfer_entries(folder):
    """Every WAV file under ``folder`` (recursively) as an unlabelled training entry.

    Args:
      folder: ``distill.transfer``.

    Returns:
      A list of :class:`tfkd.data.speech.Entry` with label :data:`NO_LABEL`.

    Raises:
      DataError: the folder is missing or holds no WAV files.
    """
    if not os.path.isdir(folder):
        raise speech.DataError(f"distill.transfer: folder {folder} does not exist")
    paths = _wavs_under(folder)
    if not paths:
        raise speech.DataError(f"distill.transfer: no .wav files under {folder}")
    return [speech.Entry(p, NO_LABEL, "train") for p in paths]


def other_word_entries(index, *, validation_pct=10.0, testing_pct=10.0):
    """Training-split clips of the words that the run's labels leave out, unlabelled.

    Words outside the label list are either sampled into ``_unknown_`` or dropped by
    :func:`tfkd.data.speech.scan`; the dropped ones of the training split (never the
    validation or test speakers) become transfer clips.

    Args:
      index: the run's :class:`tfkd.data.speech.Index`.
      validation_pct, testing_pct: the run's hash-split percentages (used when the
        folder has no list files), so that the split matches the index's.

    Returns:
      A list of :class:`tfkd.data.speech.Entry` with label :data:`NO_LABEL` (may be empty).
    """
    used = {e.path for e in index.entries if e.path is not None}
    # Every folder as a label, under the same split rule as the run's index.
    everything = speech.scan(index.root, validation_pct=validation_pct, testing_pct=testing_pct)
    out = []
    for e in everything.split("train"):
        word = everything.labels[e.label]
        if word in index.labels or word in (speech.SILENCE, speech.UNKNOWN) or e.path in used:
            continue
        out.append(speech.Entry(e.path, NO_LABEL, "train"))
    return out
