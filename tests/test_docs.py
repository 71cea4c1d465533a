import contextlib
import io
import os
import runpy

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_config_doc_is_current():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        runpy.run_path(os.path.join(ROOT, "scripts", "config_doc.py"), run_name="__main__")
    with open(os.path.join(ROOT, "docs", "config.md")) as f:
        assert f.read() == buf.getvalue(), "run: python scripts/config_doc.py > docs/config.md"


def test_readme_first_block_has_two_commands():
    text = open(os.path.join(ROOT, "README.md")).read()
    block = text.split("```")[1].splitlines()[1:]
    cmds = [l for l in block if l.strip() and not l.strip().startswith("#")]
    assert len(cmds) == 2 and "tfkd run pipelines/kws_quickstart.yaml" in cmds[0]
    assert "pytest" in cmds[1]
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert cmds[1] in ci
