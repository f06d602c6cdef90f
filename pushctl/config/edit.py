"""Writing config files: merge a profile in, set one key in place, keep the file private.

Reading, the profile model and validation live in :mod:`pushctl.config.profiles`; the room's
face (:mod:`pushctl.config`) exports the public names of both.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import tomli_w

from pushctl.config.profiles import (
    _ASSIGN,
    _FLOAT_FIELDS,
    _HEADER,
    _INT_FIELDS,
    _PATH_FIELDS,
    SECTIONS,
    TOP_KEYS,
    Profile,
    _build_profile,
    _split_key,
    _unknown_key,
    load_document,
    profile_table,
)
from pushctl.errors import ConfigError, clip
from pushctl.paths import make_private_dir

__all__ = ["save_profile", "set_in_text", "set_value", "write_private"]


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 (the file can name key files and endpoints)."""
    make_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to an existing file


def save_profile(path: Path, profile: Profile, *, make_default: bool = False) -> None:
    """Merge ``profile`` into the file at ``path`` (created if missing), mode 0600.

    Other profiles are kept; comments are not (tomli-w writes plain TOML).
    """
    doc = load_document(path)[0] if path.exists() else {}
    doc.setdefault("profiles", {})[profile.name] = profile_table(profile)
    if make_default:
        doc["default_profile"] = profile.name
    write_private(path, tomli_w.dumps(doc))


def set_value(path: Path, key: str, value: str, *, profile: str | None = None) -> Any:
    """Set one key, e.g. ``profiles.staging.apns.topic`` or ``apns.topic``, typed and validated.

    A short key applies to ``profile``, else the file's ``default_profile``, else ``default``.
    The file's comments and layout are kept where the key can be edited in place.
    ``value`` is as typed on the command line: a relative path is made absolute against the
    current directory (where the user typed it), not the config file's; ``~`` is kept.
    Returns the value stored.
    """
    doc, text = load_document(path) if path.exists() else ({}, "")
    parts = key.split(".")
    if parts == ["default_profile"]:
        where: tuple[str, ...] = ()
        typed: Any = value
    else:
        if parts[0] == "profiles":
            if len(parts) < 3:
                raise ConfigError("expected profiles.<name>.<key>", field=key)
            name, rest = parts[1], parts[2:]
        else:
            name, rest = profile or doc.get("default_profile") or "default", parts
        valid_for = {"ca_file": ()} | {f"{s}.{f.name}": () for s, c in SECTIONS.items() for f in fields(c)}
        if ".".join(rest) not in valid_for:
            raise ConfigError(f"unknown key (valid keys: default_profile, {', '.join(valid_for)})",
                              file=path, field=key)
        where = ("profiles", name, *rest[:-1])
        typed = _typed(rest[-1], value, key)
    new_text = set_in_text(text, where, parts[-1], tomli_w.dumps({"v": typed})[4:].strip())
    try:
        tomllib.loads(new_text)
    except tomllib.TOMLDecodeError:
        # The in-place edit clashed with the file's layout (e.g. dotted keys): rewrite it plainly.
        node = doc
        for part in where:
            node = node.setdefault(part, {})
        node[parts[-1]] = typed
        new_text = tomli_w.dumps(doc)
    _check_text(path, new_text, where)
    write_private(path, new_text)
    return typed


def _typed(name: str, value: str, key: str) -> Any:
    """The string from the command line as the field's TOML type."""
    try:
        if name in _INT_FIELDS:
            return int(value)
        if name in _FLOAT_FIELDS:
            return float(value)
    except ValueError:
        raise ConfigError(f"expected a number, got {clip(value, quote=True)}", field=key) from None
    if name in _PATH_FIELDS:
        return _command_line_path(value)
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _command_line_path(value: str) -> str:
    """A path typed on the command line, as stored: absolute against the current directory.

    Stored relative, it would be read against the config file's directory, another place
    than the one it was typed in. ``~`` (and ``~user``) is kept as typed, expanded on reading,
    so a file shared between accounts keeps working; an empty value is left to validation.
    """
    if not value or value.startswith("~") or os.path.isabs(value):
        return value
    return os.path.abspath(value)


def _check_text(path: Path, text: str, where: tuple[str, ...]) -> None:
    """Validate the edited document before it replaces the file."""
    doc = tomllib.loads(text)
    for key in doc:
        if key not in TOP_KEYS:
            raise _unknown_key(path, text, (), key, TOP_KEYS)
    if len(where) >= 2:
        _build_profile(path, text, where[1], doc["profiles"][where[1]])


def set_in_text(text: str, where: tuple[str, ...], key: str, literal: str) -> str:
    """``text`` with ``key = literal`` set in table ``where``, keeping comments and layout."""
    lines = text.splitlines()
    header: tuple[str, ...] = ()
    start: int | None = 0 if not where else None
    commented: int | None = None  # the starter file's "# key = example" line, replaced if present
    for i, line in enumerate(lines):
        if m := _HEADER.match(line):
            if start is not None:
                break  # the table ended without the key
            header = _split_key(m.group(1))
            if header == where:
                start = i + 1
        elif header == where and (m := _ASSIGN.match(line)) and _split_key(m.group(1)) == (key,):
            lines[i] = f"{key} = {literal}"
            return "\n".join(lines) + "\n"
        elif start is not None and commented is None and re.match(rf"^\s*#\s*{re.escape(key)}\s*=", line):
            commented = i
    if commented is not None:
        lines[commented] = f"{key} = {literal}"
    elif start is None:
        lines += ["", f"[{'.'.join(where)}]", f"{key} = {literal}"]
    else:
        lines.insert(start, f"{key} = {literal}")
    return "\n".join(lines) + "\n"
