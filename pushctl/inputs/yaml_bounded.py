"""Safe YAML with bounds: nesting depth, alias expansion, recursion; every failure located.

PyYAML's safe loader refuses Python tags but not the rest of what hostile YAML can do: a
"billion laughs" alias bomb (nine levels of nine aliases: 387 million nodes once expanded) made
every walk over the document spin; a self-referencing alias (``&a {k: *a}``) or 20,000 nested
brackets ran out of stack; a control character raised ``ReaderError`` outside any handler. Here
the node graph is composed with a depth bound, then measured as if every alias were expanded
(each distinct node once, so measuring is linear in the file), and anything over the bounds is
an :class:`~pushctl.errors.InputError` naming the limit and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pushctl.errors import InputError, clip

MAX_DEPTH = 64
"""Nesting levels (mappings and sequences) a document may have."""
MAX_NODES = 20_000
"""Nodes a document may have once every alias is expanded (a large template has a few hundred)."""


MAX_NUMBER_DIGITS = 4000
"""Python refuses to read integers of more than 4,300 digits."""


class _Limit(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def _line(node_or_mark: Any) -> int | None:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return mark.line + 1 if mark is not None and hasattr(mark, "line") else None


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses documents nested deeper than :data:`MAX_DEPTH`."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise _Limit(f"nested deeper than the limit of {MAX_DEPTH} levels", _line(event))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _check_encodable(node: ScalarNode) -> None:
    # "\ud83d" is a valid YAML escape but not a character: it could never be sent as UTF-8.
    try:
        node.value.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(node.value[exc.start])
        raise _Limit(
            f"\\u{code:04x} is half of a surrogate pair, not a character (write the character itself, "
            "or \\U and 8 hex digits)", _line(node),
        ) from None


def check_expansion(root: Node, limit: int = MAX_NODES) -> None:
    """Refuse a node graph with a cycle (a recursive alias), more than ``limit`` nodes once its
    aliases are expanded, or a string that is not Unicode text (a lone surrogate escape).
    Iterative, and each distinct node is visited once."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            if total > limit:
                raise _Limit(
                    f"aliases expand to more than the limit of {limit:,} YAML nodes", _line(node)
                )
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise _Limit("a recursive alias (an anchor used inside itself)", _line(node))
        if isinstance(node, ScalarNode):
            if not node.value.isascii():
                _check_encodable(node)
            if len(node.value) > MAX_NUMBER_DIGITS and node.tag.endswith((":int", ":float")):
                raise _Limit(f"a number of {len(node.value):,} digits; the limit is {MAX_NUMBER_DIGITS:,}",
                             _line(node))
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def load_yaml(
    text: str, *, file: str | Path, error: type[InputError] = InputError
) -> tuple[Any, Node | None]:
    """Parse one YAML document with safe-load semantics and the bounds above.

    Returns ``(data, root node)`` (``(None, None)`` for an empty document); the node tree is
    for line numbers. Every problem is ``error`` with ``file`` and, when known, the line.
    """
    try:
        loader = _BoundedLoader(text)  # the reader checks for control characters right here
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, file, error) from None
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        check_expansion(root)
        data = loader.construct_document(root)
    except _Limit as exc:
        raise error(exc.message, file=file, line=exc.line) from None
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, file, error) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "cannot parse"
        raise error(f"invalid YAML: {clip(problem, 200)}", file=file, line=_line(mark)) from None
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML: {clip(str(exc), 200)}", file=file) from None
    except RecursionError:  # e.g. a long chain of merge keys (<<: *a): the constructor recurses
        raise error(f"nested deeper than the limit of {MAX_DEPTH} levels", file=file) from None
    except (ValueError, OverflowError) as exc:
        # A scalar the constructor cannot make a value of, e.g. a timestamp like 2023-02-30.
        raise error(f"invalid YAML value: {clip(str(exc).split(';')[0], 200)}", file=file) from None
    finally:
        loader.dispose()
    return data, root


def _reader_error(
    exc: yaml.reader.ReaderError, text: str, file: str | Path, error: type[InputError]
) -> InputError:
    line = text.count("\n", 0, max(0, exc.position)) + 1 if isinstance(exc.position, int) else None
    character = exc.character
    code = f"#x{ord(character):04x}" if isinstance(character, str) else f"#x{character:02x}"
    return error(
        f"invalid YAML: control character {code} is not allowed",
        file=file, line=line, hint="remove it, or write it as an escape in a double-quoted string",
    )  # fmt: skip
