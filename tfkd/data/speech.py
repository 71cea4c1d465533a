"""Speech-Commands-layout folder source and the TFDS ``speech_commands`` source.

Folder layouts read:
  * the full data set: one folder per word (35 in v0.02) plus ``_background_noise_``,
    with ``validation_list.txt`` / ``testing_list.txt``;
  * the canonical test set: the keyword folders plus ready-made ``_unknown_`` and
    ``_silence_`` folders;
  * any user's own ``<label>/<file>.wav`` folder.

Labels are the sub-folder names (never ``_background_noise_``). The list files define the
splits when present; otherwise the data set's own rule applies: a SHA-1 hash of the
speaker (the file name before ``_nohash_``) picks the split, so that a speaker never
crosses splits.
"""

import concurrent.futures
import dataclasses
import hashlib
import logging
import math
import os
import re

import numpy as np

from tfkd import limits, safefile
from tfkd.data.wav import AudioError, fit_length, load_clip, read_wav, resample

__all__ = ["SILENCE", "UNKNOWN", "NOISE_DIR", "KWS12", "Entry", "Index", "which_set", "scan",
           "load_waves", "load_noise", "DataError", "tfds_waves", "TFDS_LABELS", "label_folders",
           "manifest"]

log = logging.getLogger(__name__)

SILENCE = "_silence_"
UNKNOWN = "_unknown_"
NOISE_DIR = "_background_noise_"
SPLITS = ("train", "validation", "test")
#: The standard 12-label keyword-spotting task (Speech Commands, MLPerf Tiny).
KWS12 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", SILENCE, UNKNOWN)
_MAX_PER_CLASS = 2 ** 27 - 1  # as in the data set's README / TF's input_data.py


class DataError(ValueError):
    """A data folder that cannot be used as asked; the message names the folder or file."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One clip: a file, or a slice of a background-noise recording (synthesized silence)."""

    path: str | None
    """The WAV file, or None for a synthesized silence clip."""
    label: int
    """Index into the label list."""
    split: str
    """train, validation or test."""
    noise: tuple | None = None
    """For silence: ``(noise file index, start fraction, volume)``."""


@dataclasses.dataclass(frozen=True)
class Index:
    """A scanned folder: the label list, every clip's entry and the noise recordings."""

    root: str
    labels: tuple
    entries: tuple
    noise_files: tuple

    def split(self, name):
        """The entries of one split (``all`` for every entry)."""
        return [e for e in self.entries if name == "all" or e.split == name]

    def counts(self):
        """``{split: {label: n}}``."""
        out = {}
        for e in self.entries:
            d = out.setdefault(e.split, {})
            d[self.labels[e.label]] = d.get(self.labels[e.label], 0) + 1
        return out


def which_set(filename, validation_pct, testing_pct):
    """The data set's split rule: SHA-1 of the speaker part of the file name.

    Args:
      filename: a clip's file name (``<speaker>_nohash_<n>.wav``); only the base name
        before ``_nohash_`` is hashed, so all clips of one speaker share a split.
      validation_pct, testing_pct: percentages of the hash space.

    Returns:
      ``"validation"``, ``"test"`` or ``"train"``.
    """
    base = os.path.basename(filename)
    speaker = re.sub(r"_nohash_.*$", "", base)
    h = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16)
    pct = (h % (_MAX_PER_CLASS + 1)) * (100.0 / _MAX_PER_CLASS)
    if pct < validation_pct:
        return "validation"
    if pct < testing_pct + validation_pct:
        return "test"
    return "train"


def _read_list(path):
    if not os.path.lexists(path):
        return None
    try:
        text = safefile.read_regular(path, limits.MAX_LIST_FILE_BYTES).decode("utf-8")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return {line.strip().replace("\\", "/") for line in text.splitlines() if line.strip()}


def _listdir(folder):
    try:
        return os.listdir(folder)
    except OSError as e:
        raise DataError(f"{folder}: cannot list the folder ({e.strerror or e})") from None


def _wav_files(folder):
    # Every name ending in .wav, whatever kind of file it is: read_wav refuses FIFOs,
    # devices and link loops by name, and skip_bad_files skips them like any bad file.
    return sorted(f for f in _listdir(folder) if f.lower().endswith(".wav"))


def label_folders(root):
    """The sub-folders of ``root`` that hold WAV files, sorted (never ``_background_noise_``).

    Raises:
      DataError: ``root`` or one of its sub-folders cannot be listed.
    """
    return [d for d in sorted(_listdir(root))
            if os.path.isdir(os.path.join(root, d)) and d != NOISE_DIR and not d.startswith(".")
            and _wav_files(os.path.join(root, d))]


def manifest(root):
    """What the folder source reads, as ``[relative path, size, mtime in ns]`` rows, sorted.

    Every ``.wav`` name in every sub-folder (``_background_noise_`` included) and the list
    files. Resume hashes it, so that clips added, removed or replaced are noticed; it
    costs one ``stat`` per file. A file that cannot be stat-ed is listed with -1s (reading
    it will name it).
    """
    rows = []

    def row(rel):
        try:
            st = os.stat(os.path.join(root, rel))
            rows.append([rel, st.st_size, st.st_mtime_ns])
        except OSError:
            rows.append([rel, -1, -1])

    for name in sorted(_listdir(root)):
        path = os.path.join(root, name)
        if os.path.isdir(path) and not name.startswith("."):
            for f in _wav_files(path):
                row(f"{name}/{f}")
        elif name in ("validation_list.txt", "testing_list.txt"):
            row(name)
    return rows


def scan(root, labels=None, *, validation_pct=10.0, testing_pct=10.0, unknown_share=0.1,
         silence_share=0.1, seed=0):
    """Indexes a Speech-Commands-layout (or user) folder.

    Args:
      root: the folder.
      labels: the label list in model order, or None for every sub-folder. Word folders
        not in the list map to ``_unknown_`` when it is listed (subsampled to
        ``unknown_share`` of the keyword clips of each split) and are dropped otherwise;
        a listed ``_silence_`` without a folder is synthesized from background noise
        (``silence_share`` of the keyword clips). Existing ``_unknown_`` / ``_silence_``
        folders are used as they are.
      validation_pct, testing_pct: hash-split percentages, used when no list files exist.
      unknown_share, silence_share: see ``labels``.
      seed: seed for subsampling unknown words and placing silence slices.

    Returns:
      An :class:`Index`.

    Raises:
      DataError: the folder is missing or empty, or a listed label has no clips.
    """
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise DataError(f"data folder {root} does not exist")
    folders = label_folders(root)
    if not folders:
        raise DataError(f"data folder {root} has no <label>/*.wav sub-folders")
    noise_dir = os.path.join(root, NOISE_DIR)
    noise_files = tuple(os.path.join(noise_dir, f) for f in _wav_files(noise_dir)) \
        if os.path.isdir(noise_dir) else ()
    if labels is None:
        labels = tuple(folders)
    labels = tuple(labels)
    if len(set(labels)) != len(labels):
        raise DataError(f"labels: duplicates in {list(labels)}")
    lab = {name: i for i, name in enumerate(labels)}
    missing = [l for l in labels if l not in folders and l not in (SILENCE, UNKNOWN)]
    empty = [l for l in missing if os.path.isdir(os.path.join(root, l))]
    if empty:
        raise DataError(f"labels: the folder of {', '.join(empty)} in {root} holds no .wav files")
    if missing:
        raise DataError(f"labels: no folder for {', '.join(missing)} in {root}")
    val_list = _read_list(os.path.join(root, "validation_list.txt"))
    test_list = _read_list(os.path.join(root, "testing_list.txt"))

    def split_of(rel):
        if val_list is not None or test_list is not None:
            if val_list and rel in val_list:
                return "validation"
            if test_list and rel in test_list:
                return "test"
            return "train"
        return which_set(rel, validation_pct, testing_pct)

    entries, others = [], {s: [] for s in SPLITS}
    for folder in folders:
        for f in _wav_files(os.path.join(root, folder)):
            rel = f"{folder}/{f}"
            path = os.path.join(root, folder, f)
            if folder in lab:
                entries.append(Entry(path, lab[folder], split_of(rel)))
            elif UNKNOWN in lab:
                others[split_of(rel)].append(path)
    rng = np.random.default_rng(seed)
    keyword_counts = {s: sum(1 for e in entries if e.split == s
                             and labels[e.label] not in (SILENCE, UNKNOWN)) for s in SPLITS}
    if UNKNOWN in lab and UNKNOWN not in folders:
        for s in SPLITS:
            n = min(len(others[s]), int(math.ceil(unknown_share * keyword_counts[s])))
            for i in sorted(rng.choice(len(others[s]), size=n, replace=False)) if n else []:
                entries.append(Entry(others[s][i], lab[UNKNOWN], s))
    if SILENCE in lab and SILENCE not in folders:
        if not noise_files:
            log.warning("%s: no %s folder; synthesized silence is digital zeros", root, NOISE_DIR)
        for s in SPLITS:
            n = int(math.ceil(silence_share * keyword_counts[s]))
            for _ in range(n):
                k = int(rng.integers(len(noise_files))) if noise_files else -1
                entries.append(Entry(None, lab[SILENCE], s,
                                     (k, float(rng.random()), float(rng.random()))))
    for name in labels:
        if not any(labels[e.label] == name for e in entries):
            raise DataError(f"labels: no clips for {name!r} in {root}")
    return Index(root, labels, tuple(entries), noise_files)


def load_noise(noise_files, sample_rate, *, skip_bad=False):
    """Reads background-noise recordings, resampled to ``sample_rate``.

    Args:
      noise_files: the recordings (``Index.noise_files``).
      sample_rate: the model's rate.
      skip_bad: an unreadable recording becomes an empty one (logged) instead of raising;
        augmentation never picks it and silence cut from it is digital zeros.

    Returns:
      A list of float32 arrays, one per file, in order (so ``Entry.noise`` indices hold).

    Raises:
      AudioError: a file is unreadable (or longer than ``limits.MAX_NOISE_SECONDS``) and
        ``skip_bad`` is false.
    """
    out = []
    for path in noise_files:
        try:
            x, rate = read_wav(path, max_seconds=limits.MAX_NOISE_SECONDS)
        except AudioError as e:
            if not skip_bad:
                raise
            log.warning("skipped background noise: %s", e)
            out.append(np.zeros(0, np.float32))
            continue
        out.append(resample(x, rate, sample_rate))
    return out


def load_waves(index, entries, sample_rate=16000, clip_samples=16000, *, skip_bad=False,
               noise=None):
    """Reads the clips of ``entries`` as float32 ``[N, clip_samples]`` with labels ``[N]``.

    Args:
      index: the :class:`Index` the entries come from.
      entries: a list of :class:`Entry`.
      sample_rate, clip_samples: the model's rate and clip length.
      skip_bad: skip unreadable files (counted and logged) instead of raising.
      noise: background noise already loaded by :func:`load_noise` (read if None).

    Returns:
      ``(waves, labels, skipped)``.

    Raises:
      AudioError: a file is unreadable and ``skip_bad`` is false.
    """
    if noise is None and any(e.path is None for e in entries):
        noise = load_noise(index.noise_files, sample_rate, skip_bad=skip_bad)

    def one(e):
        if e.path is not None:
            try:
                return load_clip(e.path, sample_rate, clip_samples)
            except AudioError:
                if skip_bad:
                    return None
                raise
        k, start, volume = e.noise
        if k < 0:
            return np.zeros(clip_samples, np.float32)
        rec = noise[k]
        off = int(start * max(0, len(rec) - clip_samples))
        return fit_length(rec[off:off + clip_samples], clip_samples) * np.float32(volume)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        clips = list(pool.map(one, entries))
    keep = [i for i, c in enumerate(clips) if c is not None]
    skipped = len(clips) - len(keep)
    if skipped:
        log.warning("skipped %d unreadable file(s) in %s", skipped, index.root)
    waves = np.stack([clips[i] for i in keep]) if keep else np.zeros((0, clip_samples), np.float32)
    labels = np.array([entries[i].label for i in keep], np.int32)
    return waves.astype(np.float32), labels, skipped


#: The label order of TFDS's ``speech_commands`` builder.
TFDS_LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes",
               SILENCE, UNKNOWN)


def tfds_waves(split, labels=KWS12, sample_rate=16000, clip_samples=16000, data_dir=None,
               download=True):
    """Streams TFDS ``speech_commands`` (v0.02, 12 labels) remapped to ``labels``.

    A generator: one clip at a time, never the whole split in memory (group it into
    chunks with :func:`tfkd.data.stream.tfds_clips`). TFDS has no speaker ids and no
    background-noise recordings: its own split is used as is, and noise mixing is not
    available with this source. Labels of the data set missing from ``labels`` map to
    ``_unknown_`` when listed and are dropped otherwise.

    Args:
      split: ``train``, ``validation`` or ``test``.
      labels: the run's label order.
      sample_rate, clip_samples: the model's rate (TFDS is 16 kHz) and clip length.
      data_dir: the TFDS data folder.
      download: let TFDS download and prepare the data set.

    Yields:
      ``(wave, label)``: float32 ``[clip_samples]`` and an int label index.

    Raises:
      DataError: the split has no clip for any of ``labels``.
    """
    import tensorflow_datasets as tfds

    unknown = labels.index(UNKNOWN) if UNKNOWN in labels else None
    remap = [labels.index(n) if n in labels else (unknown if unknown is not None else -1)
             for n in TFDS_LABELS]
    ds = tfds.load("speech_commands", split=split, data_dir=data_dir, download=download)
    found = False
    for ex in tfds.as_numpy(ds):
        y = remap[int(ex["label"])]
        if y < 0:
            continue
        x = np.asarray(ex["audio"]).astype(np.float32) / 32768.0
        found = True
        yield fit_length(resample(x, 16000, sample_rate), clip_samples).astype(np.float32), y
    if not found:
        raise DataError(f"tfds speech_commands[{split}]: no clips for labels {list(labels)}")
