"""Scenarios: emulator options, registry entries and injected faults, from TOML or kwargs.

A scenario file looks like ``samples/scenarios/flaky.toml``::

    seed = 7
    [options]
    max_concurrent_streams = 500
    [registry]
    unregistered = ["dead..."]
    [faults]
    latency_ms = { min = 1, max = 5 }
    goaway_after = 1000
    [[faults.errors]]
    status = 503
    rate = 0.05
    retry_after = 1

Every random choice comes from one ``random.Random(seed)``, so a seeded run answers the
same sequence of requests the same way.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushctl.errors import InputError, clip
from pushctl.inputs import SCENARIO_MAX_BYTES, check_regular_file, load_toml, read_bounded_text

TOKEN_UPDATE_RULES = ("connection", "key")
PROVIDERS = ("apns", "fcm", "webpush", "hms")


@dataclass
class Options:
    """How the emulated services behave when nothing goes wrong."""

    environment: str = "sandbox"
    """``sandbox`` or ``production``: keys and certificates for the other one are refused."""
    max_concurrent_streams: int = 1000
    single_stream_until_auth: bool = False
    """Advertise 1 stream until a request with valid credentials succeeds, as APNs does."""
    token_update_interval: float = 1200.0
    """A new JWT sooner than this (seconds, by ``iat``) is refused with 429 TooManyProviderTokenUpdates."""
    token_update_rule: str = "connection"
    """Where ``token_update_interval`` applies: ``connection`` (default: a JWT replaced too soon on one
    connection; a new process or connection may sign its own) or ``key`` (any new JWT for the key,
    from anywhere: the strictest reading, ``samples/scenarios/strict-apns.toml``). README: "The emulator"."""
    jwt_max_age: float = 3600.0
    access_token_lifetime: int = 3600
    idle_timeout: float = 0.0
    """Seconds without requests before a GOAWAY ``IdleTimeout`` (0 = never)."""
    device_rate_limit: int = 0
    """Pushes per token per ``device_rate_window`` before 429: APNs ``TooManyRequests``, FCM
    ``QUOTA_EXCEEDED`` "Device message rate exceeded." (0 = unlimited)."""
    device_rate_window: float = 60.0
    fcm_quota_per_minute: int = 0
    """Messages per project per minute before 429 ``QUOTA_EXCEEDED`` (0 = unlimited)."""
    fcm_quota_per_second: int = 0
    """Messages per project per second before 429 ``QUOTA_EXCEEDED`` with ``Retry-After`` (0 = unlimited)."""
    apns_quota_per_second: int = 0
    """Pushes per second the APNs side accepts, all tokens together, before 429 ``TooManyRequests``
    with ``Retry-After`` (0 = unlimited): Apple's throttling of a provider that sends too fast."""


@dataclass
class ErrorFault:
    """Answer a fraction ``rate`` of requests with ``status`` instead of processing them."""

    status: int
    rate: float
    retry_after: int | None = None
    provider: str = "both"
    """``apns``, ``fcm``, ``webpush``, ``hms``, or ``both`` / ``all`` (every one)."""
    reason: str | None = None
    """APNs reason / FCM errorCode; the default depends on the status."""
    message: str | None = None
    """FCM ``error.message`` (e.g. "Device message rate exceeded." for a per-device 429)."""


@dataclass
class Faults:
    """Injected trouble. Zero / empty means off."""

    latency_ms: float | dict[str, Any] = 0.0
    """Fixed ms, ``{min, max}`` uniform, or ``{mean, distribution = "exponential"}``."""
    errors: list[ErrorFault] = field(default_factory=list)
    goaway_after: int = 0
    """Send GOAWAY after this many streams on a connection, finish them, then close."""
    drop_after: int = 0
    """Abort the connection (no answer) on its N-th request."""
    drop_rate: float = 0.0
    stream_drop_after_reject: bool = False
    """After a rejected push, advertise 1 stream, doubling back after each success."""
    token_latency_ms: float = 0.0
    token_error_rate: float = 0.0
    token_error_status: int = 503


@dataclass
class Scenario:
    """Everything a scenario file can set."""

    options: Options = field(default_factory=Options)
    faults: Faults = field(default_factory=Faults)
    seed: int | None = None
    registry: dict[str, Any] = field(default_factory=dict)
    """Token lists (``unregistered``, ``not_for_topic``, ``expired``, ``fcm_unregistered``,
    ``fcm_other_project``, ``webpush_gone``, ``hms_illegal``), ``revoked_keys``,
    ``bad_apns_credentials_projects``, ``files`` (list name -> token file), ``apns_keys`` and
    ``service_accounts`` (paths absolute), ``hms_apps`` (app id -> secret), ``fcm_topics`` (topic ->
    tokens) and ``apns_channels`` (``[{id, topic, storage_policy, subscribers}]``)."""

    @classmethod
    def load(cls, path: Path) -> Scenario:
        """Read a scenario TOML file; relative paths in it are relative to the file."""
        text = read_bounded_text(path, what="scenario file", limit=SCENARIO_MAX_BYTES)
        return cls.from_dict(load_toml(text, file=path), base=path.parent, source=path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base: Path = Path(), source: Path | None = None) -> Scenario:
        """Build a scenario from parsed TOML; unknown keys (typos) and wrong types are InputErrors."""
        unknown = set(data) - {"seed", "options", "faults", "registry"}
        if unknown:
            names = clip(", ".join(sorted(unknown)), 200)
            raise InputError(f"unknown scenario keys: {names}", file=source)
        seed = data.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise InputError("must be a whole number", file=source, field="seed")
        scenario = cls(seed=seed)
        options = _table(data, "options", source)
        faults = dict(_table(data, "faults", source))
        errors = faults.get("errors", [])
        if not isinstance(errors, list) or not all(isinstance(e, dict) for e in errors):
            raise InputError("must be a list of tables ([[faults.errors]])", file=source,
                             field="faults.errors")
        faults["errors"] = [_build(ErrorFault, e, f"faults.errors.{i}", source) for i, e in enumerate(errors)]
        scenario.options = _build(Options, options, "options", source)
        scenario.faults = _build(Faults, faults, "faults", source)
        scenario.registry = _registry(_table(data, "registry", source), base, source)
        return scenario

    def apply(self, overrides: dict[str, Any]) -> None:
        """Set options / faults by field name (the Emulator's ``**options``)."""
        opt_names = {f.name for f in dataclasses.fields(Options)}
        fault_names = {f.name for f in dataclasses.fields(Faults)}
        for name, value in overrides.items():
            if name in opt_names:
                setattr(self.options, name, value)
            elif name in fault_names:
                if name == "errors":
                    value = [e if isinstance(e, ErrorFault) else ErrorFault(**e) for e in value]
                setattr(self.faults, name, value)
            else:
                raise TypeError(f"unknown emulator option {name!r}")


# -- checking a scenario file's tables against the dataclasses above -----------------------------

_TYPE_CHECKS: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
    "str | None": (str,), "int | None": (int,),
    "float | dict[str, Any]": (int, float, dict), "list[ErrorFault]": (list,),
}  # fmt: skip


def _table(data: dict[str, Any], key: str, source: Path | None) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise InputError(f"must be a table ([{key}])", file=source, field=key)
    return value


def _build(kind: type[Any], table: dict[str, Any], where: str, source: Path | None) -> Any:
    """``kind(**table)``, after checking every key is a field and every value has its type."""
    known = {f.name: f for f in dataclasses.fields(kind)}
    for key, value in table.items():
        if key not in known:
            raise InputError(f"invalid scenario: unknown key (valid keys: {', '.join(known)})",
                             file=source, field=f"{where}.{key}")
        allowed = _TYPE_CHECKS[str(known[key].type)]
        if (value is not None or "None" not in str(known[key].type)) and (
            not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)
        ):
            raise InputError(f"invalid scenario: expected {known[key].type}, got {clip(value, quote=True)}",
                             file=source, field=f"{where}.{key}")
        if problem := _range_problem(key, value):
            hint = f"use {' or '.join(_CHOICES[key])}" if key in _CHOICES else None
            raise InputError(f"invalid scenario: {problem}, got {clip(value, quote=True)}",
                             file=source, field=f"{where}.{key}", hint=hint)
    required = [f.name for f in known.values()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing := [name for name in required if name not in table]:
        raise InputError(f"invalid scenario: missing {', '.join(missing)}", file=source, field=where)
    return kind(**table)


_CHOICES = {"environment": ("sandbox", "production"), "provider": (*PROVIDERS, "both", "all"),
            "distribution": ("uniform", "exponential"), "token_update_rule": TOKEN_UPDATE_RULES}
_FRACTIONS = frozenset({"rate", "drop_rate", "token_error_rate"})


def _range_problem(key: str, value: Any) -> str | None:
    """Why a value of the right type still cannot work (a negative count, a rate above 1...)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        if not 0 <= value < 2**31:
            return "expected a number from 0 to 2,147,483,647"
        if key in _FRACTIONS and value > 1:
            return "expected a fraction from 0 to 1"
        if key in ("status", "token_error_status") and not 100 <= value <= 599:
            return "expected an HTTP status (100-599)"
        if key == "max_concurrent_streams" and value < 1:
            return "expected at least 1"
    if isinstance(value, str) and key in _CHOICES and value not in _CHOICES[key]:
        return f"expected one of {', '.join(_CHOICES[key])}"
    if isinstance(value, dict):  # latency_ms = {min, max} or {mean, distribution}
        for name, item in value.items():
            if name not in ("min", "max", "mean", "distribution"):
                return "latency takes min and max, or mean and distribution"
            if (problem := _range_problem(name, item)) or (
                name != "distribution" and (isinstance(item, bool) or not isinstance(item, int | float))
            ):
                return problem or f"{name} must be a number"
        if value.get("distribution") == "exponential" and not value.get("mean"):
            return "an exponential latency needs a mean above 0"
    return None


def _registry(registry: dict[str, Any], base: Path, source: Path | None) -> dict[str, Any]:
    registry = dict(registry)
    for key in ("apns_keys", "service_accounts"):
        entries = registry.get(key, [])
        if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("path"), str) for e in entries
        ):
            raise InputError("must be a list of tables with a path", file=source, field=f"registry.{key}")
        for entry in entries:
            entry["path"] = str((base / entry["path"]).resolve())
            check_regular_file(Path(entry["path"]), what=f"registry.{key} file")
    files = registry.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise InputError("must be a table of list name = file path", file=source, field="registry.files")
    registry["files"] = {k: str((base / v).resolve()) for k, v in files.items()}
    for name, path in registry["files"].items():
        check_regular_file(Path(path), what=f"registry.files.{name} file")
    return registry


class RateWindows:
    """Fixed windows per key (a token, a project): ``limit`` requests pass in each window of
    ``seconds``, later ones are refused until the window ends. Limits are passed per call, so a
    test may change the options of a running emulator."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    def refuse(self, key: str, limit: int, seconds: float) -> int | None:
        """None when this request fits; else the whole seconds (at least 1) until the window ends,
        for a ``Retry-After`` header."""
        if not limit:
            return None
        now = self._clock()
        start, count = self._windows.get(key, (now, 0))
        if now - start >= seconds:
            start, count = now, 0
        if count >= limit:
            return max(1, math.ceil(seconds - (now - start)))
        self._windows[key] = (start, count + 1)
        return None


class FaultInjector:
    """The run-time side of :class:`Faults`: seeded draws, one request at a time."""

    def __init__(self, faults: Faults, seed: int | None) -> None:
        self.faults = faults
        self.rng = random.Random(seed)
        self._errors = {p: [e for e in faults.errors if e.provider in (p, "both", "all")] for p in PROVIDERS}

    @property
    def active(self) -> bool:
        """Whether any per-request draw is needed (keeps the fault-free hot path cheap)."""
        f = self.faults
        return bool(f.latency_ms or f.errors or f.drop_rate)

    def latency(self) -> float:
        """Seconds to wait before answering."""
        spec = self.faults.latency_ms
        if not spec:
            return 0.0
        if isinstance(spec, dict):
            if spec.get("distribution") == "exponential":
                return self.rng.expovariate(1.0 / float(spec["mean"])) / 1000.0
            return self.rng.uniform(float(spec.get("min", 0)), float(spec.get("max", 0))) / 1000.0
        return float(spec) / 1000.0

    def error(self, provider: str) -> ErrorFault | None:
        """The injected error for this request, if any (one draw when errors are configured)."""
        candidates = self._errors[provider]
        if not candidates:
            return None
        draw = self.rng.random()
        for err in candidates:
            if draw < err.rate:
                return err
            draw -= err.rate
        return None

    def drop(self) -> bool:
        """Whether to abort this request's connection."""
        return bool(self.faults.drop_rate) and self.rng.random() < self.faults.drop_rate

    def token_error(self) -> bool:
        """Whether the OAuth token endpoint fails this request."""
        return bool(self.faults.token_error_rate) and self.rng.random() < self.faults.token_error_rate
