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
import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushctl.errors import InputError

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
    """Pushes per token per ``device_rate_window`` before 429 ``TooManyRequests`` (0 = unlimited)."""
    device_rate_window: float = 60.0
    fcm_quota_per_minute: int = 0
    """Messages per project per minute before 429 ``QUOTA_EXCEEDED`` (0 = unlimited)."""


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
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"cannot read scenario: {exc}", file=path) from None
        return cls.from_dict(data, base=path.parent, source=path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base: Path = Path(), source: Path | None = None) -> Scenario:
        """Build a scenario from parsed TOML (unknown keys are errors, to catch typos)."""
        unknown = set(data) - {"seed", "options", "faults", "registry"}
        if unknown:
            raise InputError(f"unknown scenario keys: {', '.join(sorted(unknown))}", file=source)
        scenario = cls(seed=data.get("seed"))
        try:
            scenario.options = Options(**data.get("options", {}))
            faults = dict(data.get("faults", {}))
            faults["errors"] = [ErrorFault(**e) for e in faults.get("errors", [])]
            scenario.faults = Faults(**faults)
        except TypeError as exc:
            raise InputError(f"invalid scenario: {exc}", file=source) from None
        if scenario.options.token_update_rule not in TOKEN_UPDATE_RULES:
            raise InputError(
                f"unknown token_update_rule {scenario.options.token_update_rule!r}",
                file=source,
                field="options.token_update_rule",
                hint="use " + " or ".join(TOKEN_UPDATE_RULES),
            )
        registry = dict(data.get("registry", {}))
        for key in ("apns_keys", "service_accounts"):
            for entry in registry.get(key, []):
                entry["path"] = str((base / entry["path"]).resolve())
        registry["files"] = {k: str((base / v).resolve()) for k, v in registry.get("files", {}).items()}
        scenario.registry = registry
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
