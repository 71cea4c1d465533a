"""Files tfkd writes get the user's umask (0644 under 022), not mkstemp's 0600."""

import os
import subprocess
import sys

import pytest

from tfkd.fileio import atomic_write, write_json

_WRITE = ("import sys; from tfkd.fileio import atomic_write; "
          "atomic_write(sys.argv[1], 'x')")


def test_new_files_are_0644_under_umask_022(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(str(tmp_path / "a.txt"), "hello")
        write_json(str(tmp_path / "b.json"), {"a": 1})
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "a.txt").st_mode & 0o777 == 0o644
    assert os.stat(tmp_path / "b.json").st_mode & 0o777 == 0o644
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600),
                                          (0o002, 0o664)])
def test_the_umask_of_the_process_decides(tmp_path, umask, mode):
    path = tmp_path / "f.txt"
    subprocess.run([sys.executable, "-c", _WRITE, str(path)], check=True,
                   preexec_fn=lambda: os.umask(umask))
    assert os.stat(path).st_mode & 0o777 == mode


def test_rewriting_a_file_keeps_its_mode(tmp_path):
    path = tmp_path / "shared.h"
    atomic_write(str(path), "one")
    os.chmod(path, 0o664)
    atomic_write(str(path), "two")
    assert os.stat(path).st_mode & 0o777 == 0o664
    assert path.read_text() == "two"
