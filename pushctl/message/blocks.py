"""Schema checks of the per-platform template blocks added for Web Push and HMS.

``webpush:`` holds what a browser notification shows (the Notifications API's options, plus the
``url`` a click opens); ``hms:`` is deep-merged into the Huawei Push Kit ``message`` object, like
``fcm:`` into FCM's. The reference for template authors is ``samples/templates/README.md``.
"""

from __future__ import annotations

from typing import Any

from pushctl.message.source import PathT, Source, _boolean, _data, _known_keys, _mapping, _one_of, _string

WEBPUSH_STRINGS = ("title", "body", "icon", "image", "badge", "url", "tag", "lang")
WEBPUSH_BOOLEANS = ("requireInteraction", "silent", "renotify")
WEBPUSH_KEYS = frozenset({*WEBPUSH_STRINGS, *WEBPUSH_BOOLEANS, "dir", "urgency", "actions", "data"})
URGENCIES = ("very-low", "low", "normal", "high")
DIRECTIONS = ("auto", "ltr", "rtl")
ACTION_KEYS = frozenset({"action", "title", "icon", "url"})


def check_webpush(src: Source, value: Any, path: PathT) -> None:
    """The ``webpush:`` block: Notifications API options a service worker passes to showNotification."""
    block = _mapping(src, value, path)
    _known_keys(src, block, path, WEBPUSH_KEYS)
    for key in WEBPUSH_STRINGS:
        if key in block:
            _string(src, block[key], (*path, key))
    for key in WEBPUSH_BOOLEANS:
        if key in block:
            _boolean(src, block[key], (*path, key))
    if "dir" in block:
        _one_of(DIRECTIONS)(src, block["dir"], (*path, "dir"))
    if "urgency" in block:
        _one_of(URGENCIES)(src, block["urgency"], (*path, "urgency"))
    if "data" in block:
        _data(src, block["data"], (*path, "data"))
    if "actions" in block:
        actions = block["actions"]
        if not isinstance(actions, list):
            raise src.error("actions must be a list of {action, title} mappings", (*path, "actions"))
        for i, action in enumerate(actions):
            apath = (*path, "actions", i)
            item = _mapping(src, action, apath)
            _known_keys(src, item, apath, ACTION_KEYS)
            for key in ("action", "title"):
                if key not in item:
                    raise src.error(f"an action needs '{key}'", apath)
            for key in item:
                _string(src, item[key], (*apath, key))


def check_hms(src: Source, value: Any, path: PathT) -> None:
    """The ``hms:`` block: merged into the HMS ``message`` (pushctl sets the tokens itself)."""
    block = _mapping(src, value, path)
    for target in ("token", "topic", "condition"):
        if target in block:
            raise src.error(
                f"'{target}' cannot be set here: pushctl sets the target per device",
                (*path, target),
                key=True,
            )
    android = block.get("android")
    if android is not None:
        _mapping(src, android, (*path, "android"))
