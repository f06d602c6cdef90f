"""The parsed template (:class:`Source`, which locates every error at file:line and field) and the
primitive field checks shared by :mod:`.schema` and the platform blocks (:mod:`.blocks`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pushctl.errors import TemplateError, clip

# FCM refuses these data keys; "aps" and "media" would collide with pushctl's own APNs keys,
# "pushctl_variant" is added by pushctl for A/B tests.
RESERVED_DATA_KEYS = frozenset({"from", "message_type", "aps", "media", "pushctl_variant"})
RESERVED_DATA_PREFIXES = ("google.", "gcm.notification.")

PathT = tuple[str | int, ...]


def is_reserved_data_key(key: str) -> bool:
    """True for data keys FCM (or pushctl itself) reserves."""
    return key in RESERVED_DATA_KEYS or key.startswith(RESERVED_DATA_PREFIXES)


def dotted(path: PathT) -> str:
    """``("locales", "fr", "title")`` -> ``locales.fr.title``."""
    return ".".join(clip(str(p), 40) for p in path)


class Source:
    """A parsed template: its plain data plus the YAML node tree, for line numbers.

    ``prefix`` places a template that sits inside another YAML file (a trigger rule's inline
    ``template:``): errors then name that file's lines and fields (``rules.chat.template.body``).
    """

    def __init__(self, path: Path, data: dict[str, Any], root: Node, prefix: PathT = ()) -> None:
        self.path = path
        self.data = data
        self.root = root
        self.prefix = prefix

    def field(self, path: PathT) -> str:
        """The dotted field name of ``path`` as the user sees it (with the prefix)."""
        return dotted((*self.prefix, *path))

    def line(self, path: PathT, *, key: bool = False) -> int | None:
        """1-based line of the value at ``path`` (of its key with ``key=True``)."""
        node: Node = self.root
        key_node: Node | None = None
        for part in path:
            if isinstance(node, MappingNode):
                for k, v in node.value:
                    if isinstance(k, ScalarNode) and k.value == str(part):
                        key_node, node = k, v
                        break
                else:
                    break
            elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
                key_node, node = None, node.value[part]
            else:
                break
        chosen = key_node if key and key_node is not None else node
        return chosen.start_mark.line + 1

    def error(
        self, message: str, path: PathT, *, hint: str | None = None, key: bool = False
    ) -> TemplateError:
        """A TemplateError located at ``path`` in this template."""
        return TemplateError(
            message, file=self.path, line=self.line(path, key=key), field=self.field(path) or None, hint=hint
        )


# -- field checks --------------------------------------------------------------

Check = Callable[[Source, Any, PathT], None]


def _string(src: Source, value: Any, path: PathT) -> None:
    if not isinstance(value, str):
        raise src.error(f"must be a string, got {type(value).__name__}", path, hint="quote the value")


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(src: Source, value: Any, path: PathT) -> None:
        if value not in choices:
            raise src.error(f"must be one of {', '.join(choices)}; got {clip(value, quote=True)}", path)

    return check


def _boolean(src: Source, value: Any, path: PathT) -> None:
    if not isinstance(value, bool):
        raise src.error(f"must be true or false, got {clip(value, quote=True)}", path)


def _unit_number(src: Source, value: Any, path: PathT) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise src.error(f"must be a number from 0 to 1, got {clip(value, quote=True)}", path)


def _mapping(src: Source, value: Any, path: PathT) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise src.error(f"must be a mapping, got {type(value).__name__}", path)
    for key in value:
        if not isinstance(key, str):
            raise src.error(f"keys must be strings, got {clip(key, quote=True)}", (*path, key), key=True,
                            hint="quote the key")
    return value


def _known_keys(src: Source, value: dict[str, Any], path: PathT, allowed: frozenset[str]) -> None:
    for key in value:
        if key not in allowed:
            raise src.error(f"unknown key '{clip(key)}'", (*path, key), key=True,
                            hint=f"allowed: {', '.join(sorted(allowed))}")


def _data(src: Source, value: Any, path: PathT) -> None:
    for key, item in _mapping(src, value, path).items():
        if is_reserved_data_key(key):
            raise src.error(f"data key '{clip(key)}' is reserved", (*path, key), key=True,
                            hint="rename the key")
        if not isinstance(item, str):
            raise src.error(
                f"data values must be strings, got {type(item).__name__}",
                (*path, key),
                hint="quote the value",
            )
