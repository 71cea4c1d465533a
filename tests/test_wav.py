"""Hostile and broken WAV files and data folders, as someone else's folder brings them.

Each case is met through the public readers (``read_wav``, ``scan`` + ``load_waves``,
``load_noise``) with the bounds of ``tfkd.limits``. Cases that hang or take all memory on
a reader without these checks run guarded (a thread that is unblocked, a subprocess with
a memory limit), so that a regression fails instead of stalling the suite.
"""

import os
import struct
import subprocess
import sys
import threading

import numpy as np
import pytest

from tests.wavutil import tone, write_wav
from tfkd import limits
from tfkd.data import speech, wav


def _forge(path, *, rate=16000, channels=1, bits=16, tag=1, payload=b"\0" * 32000, declared=None):
    """A WAV file whose header says what the test wants, whatever the payload is."""
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * channels * bits // 8) & 0xFFFFFFFF,
                      (channels * bits // 8) & 0xFFFF, bits)
    n = len(payload) if declared is None else declared
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", n) + payload
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body) & 0xFFFFFFFF) + body)
    return str(path)


def _folder(root, words=("yes", "no"), n=3):
    for w in words:
        os.makedirs(root / w, exist_ok=True)
        for i in range(n):
            write_wav(root / w / f"spk{i}{w}_nohash_0.wav", tone(300 + 100 * i, 1, 16000), 16000)
    return root


def _in_thread(fn, unblock, timeout=60):
    """Runs ``fn``; if it is still blocked after ``timeout`` s, calls ``unblock`` and fails."""
    out = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        unblock()
        t.join(10)
        pytest.fail("the reader blocked (it opened a FIFO)")
    if "error" in out:
        raise out["error"]
    return out["value"]


def _unblock_fifo(path):
    def unblock():
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    return unblock


# -- headers ------------------------------------------------------------------------------

def test_ten_megahertz_header_is_refused_before_reading(tmp_path):
    # The file: 32 KB whose header claims 10,000,019 Hz (108 s and 10 GB to resample).
    p = _forge(tmp_path / "fast.wav", rate=10_000_019)
    with pytest.raises(wav.AudioError, match=r"fast\.wav: bad header \(sample rate 10000019 Hz; "
                                             r"1000 to 384000 Hz are read\)"):
        wav.read_wav(p)
    p = _forge(tmp_path / "huge.wav", rate=4_294_967_291)
    with pytest.raises(wav.AudioError, match=r"huge\.wav: bad header \(sample rate 4294967291 Hz"):
        wav.load_clip(p)


@pytest.mark.parametrize("rate,ok", [(999, False), (1000, True), (384_000, True), (384_001, False)])
def test_sample_rate_bounds_on_both_sides(tmp_path, rate, ok):
    p = _forge(tmp_path / "r.wav", rate=rate, payload=b"\0\1" * 1000)
    if ok:
        x, r = wav.read_wav(p)
        assert r == rate and len(x) == 1000
    else:
        with pytest.raises(wav.AudioError, match=f"sample rate {rate} Hz"):
            wav.read_wav(p)


@pytest.mark.parametrize("channels", [0, limits.MAX_WAV_CHANNELS + 1, 65535])
def test_channel_count_bounds(tmp_path, channels):
    p = _forge(tmp_path / "c.wav", channels=channels)
    with pytest.raises(wav.AudioError, match=rf"c\.wav: bad header \({channels} channels"):
        wav.read_wav(p)


def test_declared_length_is_checked_against_the_file_size(tmp_path):
    # The header claims 4 GB of audio; the file holds 32 KB.
    p = _forge(tmp_path / "liar.wav", declared=0xFFFFFFF0)
    with pytest.raises(wav.AudioError, match=r"liar\.wav: truncated \(the header declares "
                                             r"4294967280 bytes of audio, the file holds 32000\)"):
        wav.read_wav(p)


def test_streaming_placeholder_length_reads_to_the_end(tmp_path):
    # Writers that cannot seek back leave 0xFFFFFFFF: the audio runs to the end of the file.
    x = (tone(440, 0.5, 16000) * 32767).astype("<i2")
    p = _forge(tmp_path / "stream.wav", payload=x.tobytes(), declared=0xFFFFFFFF)
    y, rate = wav.read_wav(p)
    assert rate == 16000
    np.testing.assert_allclose(y, x / 32768.0, atol=1e-6)


def test_clip_duration_is_bounded_and_noise_has_a_larger_bound(tmp_path):
    # 1 kHz 8-bit mono: one byte per millisecond, so 10 min + 1 s is 601 KB on disk.
    seconds = limits.MAX_CLIP_SECONDS + 1
    p = _forge(tmp_path / "long.wav", rate=1000, bits=8, payload=b"\x80" * (1000 * seconds))
    with pytest.raises(wav.AudioError, match=rf"long\.wav: {seconds} s of audio, more than the "
                                             rf"{limits.MAX_CLIP_SECONDS} s limit"):
        wav.read_wav(p)
    (rec,) = speech.load_noise([p], 1000)  # a background-noise recording may be longer
    assert rec.shape == (1000 * seconds,) and np.all(rec == 0)


def test_odd_sample_rates_resample_to_the_right_pitch(tmp_path):
    for rate in (8000, 44100, 383_999):
        write_wav(tmp_path / "t.wav", tone(440, 1.0, rate), rate)
        x = wav.load_clip(tmp_path / "t.wav")
        spec = np.abs(np.fft.rfft(x))
        assert abs(int(np.argmax(spec)) - 440) <= 1, rate


def test_unsupported_format_is_refused_from_the_header(tmp_path):
    p = _forge(tmp_path / "alaw.wav", tag=6, bits=8)
    with pytest.raises(wav.AudioError, match=r"alaw\.wav: unsupported WAV format \(tag 6, 8 bits\)"):
        wav.read_wav(p)


# -- kinds of files -------------------------------------------------------------------------

def test_fifo_named_wav_is_refused_by_name_and_skipped(tmp_path):
    root = _folder(tmp_path)
    fifo = str(root / "yes" / "fifo_nohash_0.wav")
    os.mkfifo(fifo)
    idx = speech.scan(root, ["yes", "no"])
    with pytest.raises(wav.AudioError, match=r"fifo_nohash_0\.wav: cannot read \(not a regular "
                                             r"file but a FIFO\)"):
        _in_thread(lambda: speech.load_waves(idx, idx.entries), _unblock_fifo(fifo))
    waves, y, skipped = _in_thread(lambda: speech.load_waves(idx, idx.entries, skip_bad=True),
                                   _unblock_fifo(fifo))
    assert skipped == 1 and waves.shape == (6, 16000) and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]


def test_links_to_devices_and_link_loops_are_refused_by_name(tmp_path):
    root = _folder(tmp_path)
    os.symlink("/dev/null", root / "yes" / "null_nohash_0.wav")
    os.symlink("loop_nohash_0.wav", root / "no" / "loop_nohash_0.wav")
    idx = speech.scan(root, ["yes", "no"])
    with pytest.raises(wav.AudioError, match=r"null_nohash_0\.wav: cannot read \(not a regular "
                                             r"file but a character device\)"):
        wav.read_wav(root / "yes" / "null_nohash_0.wav")
    with pytest.raises(wav.AudioError, match=r"loop_nohash_0\.wav: cannot read \(Too many levels "
                                             r"of symbolic links\)"):
        wav.read_wav(root / "no" / "loop_nohash_0.wav")
    waves, y, skipped = speech.load_waves(idx, idx.entries, skip_bad=True)
    assert skipped == 2 and len(y) == 6


def test_link_to_dev_zero_does_not_take_all_memory(tmp_path):
    # On a reader that trusts the name this reads /dev/zero until memory runs out, so it
    # runs in a child process with 2 GB of address space: a regression fails, not the machine.
    root = _folder(tmp_path)
    os.symlink("/dev/zero", root / "yes" / "zero_nohash_0.wav")
    pkg = os.path.dirname(os.path.dirname(wav.__file__))
    code = (
        "import resource, sys, types\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        # The package's __init__ imports Keras, which needs more address space than that;
        # the readers themselves need only NumPy.
        "pkg = types.ModuleType('tfkd'); pkg.__path__ = [sys.argv[1]]; sys.modules['tfkd'] = pkg\n"
        "from tfkd.data import speech\n"
        "idx = speech.scan(sys.argv[2], ['yes', 'no'])\n"
        "waves, y, skipped = speech.load_waves(idx, idx.entries, skip_bad=True)\n"
        "print(skipped, len(y))\n"
        "speech.load_waves(idx, idx.entries)\n")
    r = subprocess.run([sys.executable, "-c", code, pkg, str(root)], capture_output=True,
                       text=True, timeout=300)
    assert r.stdout.split() == ["1", "6"], r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].endswith(
        "zero_nohash_0.wav: cannot read (not a regular file but a character device)")


def test_fifo_list_file_is_refused_not_waited_for(tmp_path):
    root = _folder(tmp_path)
    fifo = str(root / "validation_list.txt")
    os.mkfifo(fifo)
    with pytest.raises(speech.DataError, match=r"validation_list\.txt: cannot read \(not a regular "
                                               r"file but a FIFO\)"):
        _in_thread(lambda: speech.scan(root, ["yes", "no"]), _unblock_fifo(fifo))


def test_list_file_that_is_not_utf8_is_one_line(tmp_path):
    root = _folder(tmp_path)
    (root / "testing_list.txt").write_bytes(b"yes/caf\xe9.wav\n")
    with pytest.raises(speech.DataError, match=r"testing_list\.txt: not UTF-8 text \(byte 7\)"):
        speech.scan(root, ["yes", "no"])


def test_bad_background_noise_is_named_or_skipped(tmp_path):
    root = _folder(tmp_path)
    noise = root / speech.NOISE_DIR
    noise.mkdir()
    write_wav(noise / "white.wav", np.random.default_rng(0).uniform(-0.5, 0.5, 32000), 16000)
    pipe = str(noise / "pipe.wav")
    os.mkfifo(pipe)
    _forge(noise / "fast.wav", rate=10_000_019)
    idx = speech.scan(root, ["yes", "no", speech.SILENCE], silence_share=1.0)
    files = [os.path.basename(p) for p in idx.noise_files]
    assert files == ["fast.wav", "pipe.wav", "white.wav"]
    with pytest.raises(wav.AudioError, match=r"fast\.wav: bad header \(sample rate 10000019 Hz"):
        _in_thread(lambda: speech.load_noise(idx.noise_files, 16000), _unblock_fifo(pipe))
    recs = _in_thread(lambda: speech.load_noise(idx.noise_files, 16000, skip_bad=True),
                      _unblock_fifo(pipe))
    assert [len(r) for r in recs] == [0, 0, 32000]
    waves, y, skipped = _in_thread(lambda: speech.load_waves(idx, idx.entries, skip_bad=True),
                                   _unblock_fifo(pipe))
    silence = waves[y == 2]
    assert len(silence) == 6 and skipped == 0
    # Slices of the good recording are noise; slices of a skipped one are digital zeros.
    uses_white = [e.noise[0] == 2 for e in idx.entries if e.path is None]
    assert 0 < sum(uses_white) < len(uses_white)
    for clip, white in zip(silence, uses_white):
        assert (np.abs(clip).max() > 0) == white


def test_unlistable_label_folder_is_one_line(tmp_path, monkeypatch):
    root = _folder(tmp_path)
    real = os.listdir

    def listdir(path):  # what an unreadable folder does for a user without the permission
        if os.path.basename(os.fspath(path)) == "no":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    with pytest.raises(speech.DataError, match=r"no: cannot list the folder \(Permission denied\)"):
        speech.label_folders(root)
