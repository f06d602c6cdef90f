"""Provider registry: name -> ``"module:factory"``, imported only when used.

Built-in providers are listed in :data:`PROVIDERS`; third-party ones register the same way
through the ``pushctl.providers`` entry-point group (like llm's plugins), so a new service is
a module plus one entry, nothing else.

The face exports the contract every provider implements (:mod:`.base`); each provider module
(``pushctl.providers.apns``, ``.fcm``, ``.webpush``, ``.hms``) is public too, like a plugin, and
imported only when used.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, cast

from pushctl.errors import ConfigError
from pushctl.providers.base import Attempt, AttemptKind, Provider, WorkItem, prepare_item, started, take_batch

__all__ = [
    "PROVIDERS",
    "Attempt",
    "AttemptKind",
    "Provider",
    "WorkItem",
    "available_providers",
    "get_provider_factory",
    "prepare_item",
    "started",
    "take_batch",
]

PROVIDERS: dict[str, str] = {
    "apns": "pushctl.providers.apns:create",
    "fcm": "pushctl.providers.fcm:create",
    "webpush": "pushctl.providers.webpush:create",
    "hms": "pushctl.providers.hms:create",
}

ENTRY_POINT_GROUP = "pushctl.providers"

ProviderFactory = Callable[..., Provider]


def available_providers() -> list[str]:
    """Names of the built-in and installed providers, sorted."""
    names = set(PROVIDERS) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names)


def get_provider_factory(name: str) -> ProviderFactory:
    """The factory that builds provider ``name``; the module is imported only now.

    Raises ConfigError for a name that is neither built in nor installed.
    """
    target = PROVIDERS.get(name)
    if target is None:
        for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
            return cast(ProviderFactory, ep.load())
        known = ", ".join(available_providers())
        raise ConfigError(f"unknown provider '{name}'", hint=f"known: {known}")
    module_name, _, attr = target.partition(":")
    factory: Any = getattr(import_module(module_name), attr)
    return cast(ProviderFactory, factory)
