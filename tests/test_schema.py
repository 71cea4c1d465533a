import dataclasses
import os
import typing

import pytest

from tfkd.schema import ConfigError, apply_overrides, build, require, resolve_paths, to_dict


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pair:
    a: str
    """Required."""
    w: float = 1.0
    """A weight >= 0."""

    def __post_init__(self):
        require(self.w >= 0, "w", "must be >= 0", self.w)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Section:
    n: int = 1
    pairs: tuple[Pair, ...] = ()
    names: typing.Optional[tuple[str, ...]] = None
    inner: Pair = dataclasses.field(default_factory=lambda: Pair(a="x"))


@pytest.mark.parametrize("data,message", [
    ({"m": 1}, "top.m: unknown key (allowed: n, pairs, names, inner)"),
    ({"n": "3"}, "top.n: must be an integer, got '3'"),
    ({"n": True}, "top.n: must be an integer, got True"),
    ({"pairs": {"a": "x"}}, "top.pairs: must be a list, got {'a': 'x'}"),
    ({"pairs": [{"a": "x"}, {"w": 2}]}, "top.pairs[1].a: required"),
    ({"pairs": [{"a": "x", "w": -1}]}, "top.pairs[0].w: must be >= 0, got -1.0"),
    ({"pairs": ["x"]}, "top.pairs[0]: must be a mapping, got 'x'"),
    ({"names": ["a", 2]}, "top.names[1]: must be a string, got 2"),
    ({"inner": {"a": "y", "wt": 1}}, "top.inner.wt: unknown key (allowed: a, w)"),
])
def test_errors_name_the_key_path(data, message):
    with pytest.raises(ConfigError) as e:
        build(Section, data, "top")
    assert str(e.value) == message


def test_values_are_converted_and_round_trip():
    s = build(Section, {"n": 2, "pairs": [{"a": "p", "w": 2}], "names": ["u", "v"]})
    assert s == Section(n=2, pairs=(Pair(a="p", w=2.0),), names=("u", "v"))
    assert isinstance(s.pairs[0].w, float)
    assert to_dict(s) == {"n": 2, "pairs": [{"a": "p", "w": 2.0}], "names": ["u", "v"],
                          "inner": {"a": "x", "w": 1.0}}
    assert build(Section, to_dict(s)) == s
    assert build(Section, {"names": None}).names is None


def test_overrides_follow_the_defaults_and_resolve_paths(tmp_path, monkeypatch):
    defaults = {"data": {"path": None, "n": 1}, "seed": 0}
    raw = {"data": {"n": 2}}
    monkeypatch.chdir(tmp_path)
    apply_overrides(raw, ["data.path=clips", "seed=3", "data.n="], defaults, lambda t: int(t) if t.isdigit() else t,
                    ("data.path",))
    assert raw == {"data": {"n": None, "path": os.path.join(str(tmp_path), "clips")}, "seed": 3}
    with pytest.raises(ConfigError, match=r"^data.pth: unknown key \(allowed: path, n\)$"):
        apply_overrides({}, ["data.pth=1"], defaults, str)
    with pytest.raises(ConfigError, match=r"^--set seed: expected KEY=VALUE$"):
        apply_overrides({}, ["seed"], defaults, str)
    raw = {"data": {"path": "~/x"}}
    resolve_paths(raw, "/base", ("data.path", "missing.key"))
    assert raw["data"]["path"] == os.path.expanduser("~/x")  # absolute after expansion
    raw = {"data": {"path": "a/../b"}}
    resolve_paths(raw, "/base", ("data.path",))
    assert raw["data"]["path"] == "/base/b"
