"""The ``tfkd`` command as a user meets it: fast answers, quiet output, one line on Ctrl-C."""

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from tfkd.cli import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "pipelines", "kws_quickstart.yaml")


def _env():
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def test_import_tfkd_and_the_cli_do_not_import_tensorflow():
    # tfkd.config too: validate checks the schema before TensorFlow is needed.
    code = ("import sys, tfkd, tfkd.cli, tfkd.fileio, tfkd.export.carray, tfkd.config, tfkd.models; "
            "tfkd.config.load(tfkd.config.__file__.replace('tfkd/config.py', "
            "'pipelines/kws_quickstart.yaml')); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'tf_keras', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_validate_no_build_checks_the_search_section_without_tensorflow(tmp_path):
    # The search section goes through tfkd search's parser, which must not pull TF in.
    path = tmp_path / "p.yaml"
    path.write_text(f"data: {{path: {os.path.join(ROOT, 'tfkd', 'assets', 'speech_commands_mini')}}}\n"
                    "search: {budget: {flash: 23KB}, space: {channels: [8, 16]}}\n")
    code = ("import sys; from click.testing import CliRunner; from tfkd.cli import cli; "
            "r = CliRunner().invoke(cli, ['validate', '--no-build', sys.argv[1]] + sys.argv[2:]); "
            "print(r.exit_code, r.output.strip().splitlines()[-1]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'tf_keras', 'keras', 'optuna')))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         check=True)
    assert out.stdout.splitlines() == [f"0 {path}: ok (p)", "[]"]
    out = subprocess.run([sys.executable, "-c", code, str(path), "--set", "search.space.blocks=[0, 2]"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["2 Error: search.space.blocks: must be >= 1, got 0..2", "[]"]


@pytest.mark.slow
def test_lazy_names_still_work():
    code = ("import tfkd; from tfkd import keras; "
            "print(keras.__name__, tfkd.Distiller.__name__, tfkd.FeaturePair.__name__, "
            "'Distiller' in dir(tfkd))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, check=True)
    assert out.stdout.split() == ["tf_keras", "Distiller", "FeaturePair", "True"]


def test_version():
    res = CliRunner().invoke(cli, ["--version"])
    assert res.exit_code == 0 and res.output.startswith("tfkd, version ")


@pytest.mark.slow
def test_validate_prints_one_line_and_nothing_on_stderr():
    res = subprocess.run([sys.executable, "-m", "tfkd.cli", "validate", QUICKSTART],
                         capture_output=True, text=True, env=_env(), cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"{QUICKSTART}: ok (kws_quickstart)\n"
    assert res.stderr == ""


@pytest.mark.slow
def test_validate_error_is_one_line_without_tensorflow_noise():
    res = subprocess.run([sys.executable, "-m", "tfkd.cli", "validate", QUICKSTART,
                          "--set", "distill.temperature=-1"],
                         capture_output=True, text=True, env=_env(), cwd=ROOT)
    assert res.returncode == 2
    lines = [l for l in res.stderr.splitlines() if l.startswith("Error")]
    assert len(lines) == 1 and "distill.temperature" in lines[0]
    assert "0000 " not in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow
@pytest.mark.parametrize("delay", [1.0, 3.0])
def test_ctrl_c_during_start_up_is_one_line(tmp_path, delay):
    # While TensorFlow is still importing (it takes several seconds on a small CPU).
    proc = subprocess.Popen([sys.executable, "-m", "tfkd.cli", "run", QUICKSTART, "--out",
                             str(tmp_path / "run")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("Interrupted")
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_search_is_quiet_too(tmp_path):
    res = subprocess.run([sys.executable, "-m", "tfkd.cli", "search", QUICKSTART, "--budget",
                          "flash=23KB", "--dry-run", "--samples", "1", "--out", str(tmp_path / "s")],
                         capture_output=True, text=True, env=_env(), cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert "sampled candidate" in res.stdout
