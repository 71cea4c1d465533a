"""Bounded YAML loading for configs that may come from anyone.

``yaml.safe_load`` refuses tags that run code, but not what can take all memory or time:
a 600-byte "billion laughs" file whose aliases expand to 10⁹ nodes, nesting deep enough
to exhaust Python's stack, or a file of gigabytes. Nor does it refuse duplicate keys,
where the last one silently wins. This loader refuses all of them, with one line that
names the file (or ``--set`` value) and the line:

* files over :data:`tfkd.limits.MAX_YAML_BYTES`, and text that is not UTF-8;
* nesting deeper than :data:`tfkd.limits.MAX_YAML_DEPTH`, also when reached through aliases;
* aliases that make the data more than :data:`tfkd.limits.MAX_YAML_EXPANSION` times the
  written nodes (plus 1000), and aliases that contain themselves;
* duplicate keys in one mapping (merge keys ``<<`` may still be overridden, as YAML says);
* tags other than YAML's own (``!!python/...``), as ``yaml.SafeLoader`` does.

Booleans follow YAML 1.2: only ``true``/``false``, so that the keywords ``yes``, ``no``,
``on`` and ``off`` stay strings in label lists.
"""

import re

import yaml

from tfkd import limits

__all__ = ["YamlError", "loads", "load_file"]

_MERGE = "tag:yaml.org,2002:merge"
_BOOL = "tag:yaml.org,2002:bool"


class YamlError(yaml.YAMLError, ValueError):
    """YAML that cannot be loaded or is refused.

    Attributes:
      source: the file name, or a description such as ``--set value``.
      line: the 1-based line, or None.
      message: what is wrong, without the source and line.
      problem: the same for a refusal; for a syntax error only the parser's words (used
        by ``--set KEY: cannot parse value '...' (<problem>)``).
    """

    def __init__(self, source, message, line=None, problem=None):
        super().__init__(message)
        self.source, self.message, self.line = source, message, line
        self.problem = message if problem is None else problem

    def __str__(self):
        where = f": line {self.line}" if self.line is not None else ""
        return f"{self.source}{where}: {self.message}"


class _Refused(yaml.MarkedYAMLError):
    """A refusal raised inside the loader, carrying the position it refers to."""


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 booleans, a nesting bound and duplicate-key errors."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        # The composer recurses once per level: stop long before Python's stack does.
        self._depth += 1
        try:
            if self._depth > limits.MAX_YAML_DEPTH:
                raise _Refused(problem=f"nested deeper than {limits.MAX_YAML_DEPTH} levels",
                               problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node, deep=deep)
                if key in first:
                    raise _Refused(problem=f"duplicate key {key!r} (first on line {first[key]})",
                                   problem_mark=key_node.start_mark)
                first[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != _BOOL]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _children(node):
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return ()


def _check_aliases(root):
    """Measures the node graph as the constructed data will be: aliases counted in full.

    Iterative, with sizes and depths memoized per node, so that measuring 10⁹ expanded
    nodes costs as much as the few nodes written.
    """
    size, depth, state = {}, {}, {}
    stack = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            state[key] = 2
            continue
        if state.get(key) == 2:
            continue
        if state.get(key) == 1:  # met again while its own children are being measured
            raise _Refused(problem="an alias refers to a node that contains it",
                           problem_mark=node.start_mark)
        state[key] = 1
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if state.get(id(k)) != 2)
    written = len(state)
    if size[id(root)] > limits.MAX_YAML_EXPANSION * written + 1000:
        raise _Refused(problem=f"aliases expand {written} nodes into {size[id(root)]} (more than "
                               f"{limits.MAX_YAML_EXPANSION} times); write the values out",
                       problem_mark=root.start_mark)
    if depth[id(root)] > limits.MAX_YAML_DEPTH:
        raise _Refused(problem=f"nested deeper than {limits.MAX_YAML_DEPTH} levels through aliases",
                       problem_mark=root.start_mark)


def loads(text, source="<string>"):
    """Loads one YAML document from a string, within the bounds of this module.

    Args:
      text: the YAML text.
      source: how errors name it (a file name, ``--set value``).

    Returns:
      Plain data (dicts, lists, str, int, float, bool, None, ...), or None for no document.

    Raises:
      YamlError: bad YAML, or input beyond a bound; the message is one line.
    """
    if len(text) > limits.MAX_YAML_BYTES:
        raise YamlError(source, f"larger than the {limits.MAX_YAML_BYTES} byte limit")
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_aliases(node)
        return loader.construct_document(node)
    except _Refused as e:
        raise YamlError(source, e.problem, e.problem_mark.line + 1) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "not valid YAML"
        tag = re.search(r"constructor for the tag '([^']*)'", problem)
        if tag:
            name = tag.group(1).replace("tag:yaml.org,2002:", "!!")
            raise YamlError(source, f"not valid YAML (tag {name} is not allowed: tfkd's YAML "
                                    "never runs code)", mark.line + 1 if mark else None,
                            f"tag {name} is not allowed") from None
        raise YamlError(source, f"not valid YAML ({problem})", mark.line + 1 if mark else None,
                        problem) from None
    except yaml.YAMLError as e:  # ReaderError: a character YAML does not allow
        problem = str(e).splitlines()[0]
        raise YamlError(source, f"not valid YAML ({problem})", problem=problem) from None
    finally:
        if loader is not None:
            loader.dispose()


def load_file(path):
    """Reads and loads a YAML file of at most :data:`tfkd.limits.MAX_YAML_BYTES` bytes.

    Returns:
      As :func:`loads`.

    Raises:
      YamlError: unreadable, too large, not UTF-8, bad YAML or beyond a bound (one line).
    """
    try:
        # A plain open: the user names the config, and may pass a pipe such as <(...);
        # the read itself is bounded.
        with open(path, "rb") as f:
            data = f.read(limits.MAX_YAML_BYTES + 1)
    except OSError as e:
        raise YamlError(path, f"cannot read ({e.strerror or e})") from None
    if len(data) > limits.MAX_YAML_BYTES:
        raise YamlError(path, f"larger than the {limits.MAX_YAML_BYTES} byte limit for a config")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise YamlError(path, f"not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as "
                              "UTF-8", line) from None
    return loads(text, str(path))
