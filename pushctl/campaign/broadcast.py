"""Broadcast sends: one request to an FCM topic / condition or an APNs broadcast channel.

Breaking news and live scores are not sent device by device: the service fans the one message out
to every device subscribed. A broadcast is journaled as a campaign of exactly one "device" — the
target (``topic:news``, ``condition:'a' in topics && 'b' in topics``, ``channel:<id>``) — with the
service's id for the message (the FCM message name, the APNs ``apns-request-id``), so ``pushctl runs``
shows it like any campaign and running the same command again does not send it twice.

The send goes through the same :class:`~pushctl.delivery.Sender` as a campaign (retries with
backoff and ``Retry-After``; refused credentials stop it). APNs channel management (create, list,
read, delete) is :class:`Channels`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pushctl.config import Profile
from pushctl.delivery import Event, Sender, SendOptions, Summary, WorkItem
from pushctl.errors import AuthRefused, ConfigError, InputError, PayloadError, ProviderUnavailable
from pushctl.journal import DeviceState, Journal
from pushctl.message import Template, build_apns_broadcast, build_fcm_broadcast
from pushctl.model import Device, Platform
from pushctl.outcome import Outcome, Result
from pushctl.providers import Provider, get_provider_factory, started
from pushctl.transport import ConnectError, ConnectionLost

TargetKind = Literal["fcm-topic", "fcm-condition", "apns-channel"]
_LABELS = {"fcm-topic": "topic", "fcm-condition": "condition", "apns-channel": "channel"}


@dataclass
class BroadcastSpec:
    """What to broadcast where."""

    template: Path
    kind: TargetKind
    target: str
    profile: Profile
    journal_path: Path
    campaign_id: str | None = None
    force: bool = False
    validate_only: bool = False
    send: SendOptions = field(default_factory=SendOptions)

    @property
    def label(self) -> str:
        """The journal's "token" for this broadcast: ``topic:news``, ``channel:<id>``..."""
        return f"{_LABELS[self.kind]}:{self.target}"

    @property
    def provider(self) -> str:
        return "apns" if self.kind == "apns-channel" else "fcm"


@dataclass
class BroadcastReport:
    """The one result of a broadcast, the campaign summary, and whether it had been sent before."""

    campaign_id: str
    result: Result | None
    """None when the journal says this broadcast was already sent (nothing was sent now)."""
    summary: Summary
    request_body: dict[str, Any]


def _request(spec: BroadcastSpec, template: Template, provider: Provider, collapse_id: str) -> Any:
    platform = Platform.IOS if spec.kind == "apns-channel" else Platform.ANDROID
    note = template.render(Device(spec.label, platform, {}, source="broadcast", line=0))
    if spec.kind == "apns-channel":
        topic = getattr(provider, "topic", None) or ""
        return build_apns_broadcast(note, spec.target, topic=topic)
    if spec.kind == "fcm-topic":
        return build_fcm_broadcast(
            note, topic=spec.target, validate_only=spec.validate_only, collapse_key=collapse_id
        )
    return build_fcm_broadcast(
        note, condition=spec.target, validate_only=spec.validate_only, collapse_key=collapse_id
    )


async def run_broadcast(spec: BroadcastSpec, on_event: Any = None) -> BroadcastReport:
    """Send one broadcast (unless the journal says it was sent already) and record it."""
    if spec.kind != "apns-channel" and not spec.profile.fcm.configured:
        raise ConfigError("the profile has no FCM credentials", field="fcm.service_account")
    if spec.kind == "apns-channel" and not spec.profile.apns.configured:
        raise ConfigError("the profile has no APNs credentials", field="apns.key_file")
    template = Template.load(spec.template)
    provider = get_provider_factory(spec.provider)(
        spec.profile, max_connections=1, validate_only=spec.validate_only
    )
    audience_fp = hashlib.sha256(spec.label.encode()).hexdigest()
    campaign_id = spec.campaign_id or Journal.derive_campaign_id(
        template.fingerprint, audience_fp, {"broadcast": spec.kind, "validate_only": spec.validate_only}
    )
    platform = Platform.IOS if spec.kind == "apns-channel" else Platform.ANDROID
    with Journal(spec.journal_path) as journal:
        run = journal.open_run(
            campaign_id,
            template_fp=template.fingerprint,
            audience_fp=audience_fp,
            options={"broadcast": spec.label},
            force=spec.force,
        )
        try:
            request = _request(spec, template, provider, run.collapse_id)
            body = json.loads(request.body)
            if run.lookup([spec.label]).get(spec.label) is DeviceState.SETTLED:
                run.finish()
                return BroadcastReport(campaign_id, None, journal.summary(campaign_id), body)
            results: list[Result] = []

            def on_result(result: Result) -> None:
                run.record(result)
                results.append(result)

            run.mark_inflight([(spec.label, platform, 0, "")])
            async with started([provider]):
                sender = Sender({spec.provider: provider}, spec.send, on_result=on_result, on_event=on_event)
                await sender.run(
                    [WorkItem(Device(spec.label, platform, source="broadcast"), spec.provider, request)]
                )
        except PayloadError:
            run.finish()
            raise
        except BaseException:
            run.finish(stopped_reason="interrupted")
            raise
        stopped = "auth_failed" if any(r.outcome is Outcome.AUTH_FAILED for r in results) else None
        run.finish(stopped_reason=stopped or sender.stopped_reason)
        summary = journal.summary(campaign_id)
    return BroadcastReport(campaign_id, results[0] if results else None, summary, body)


class Channels:
    """APNs broadcast channels of the profile's app (bundle id ``apns.topic``): the management API."""

    def __init__(self, profile: Profile) -> None:
        if not profile.apns.configured:
            raise ConfigError("the profile has no APNs credentials", field="apns.key_file")
        provider: Any = get_provider_factory("apns")(profile, max_connections=1)
        self._provider = provider
        self.topic = str(provider.topic)

    async def __aenter__(self) -> Channels:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._provider.close()

    async def _call(self, method: str, suffix: str, channel_id: str | None = None, body: bytes = b"") -> Any:
        headers = [("apns-channel-id", channel_id)] if channel_id else []
        if body:
            headers.append(("content-type", "application/json"))
        try:
            response = await self._provider.manage(method, f"/1/apps/{self.topic}/{suffix}", headers, body)
        except (ConnectionLost, ConnectError) as exc:
            raise ProviderUnavailable(
                f"no answer from the APNs channel API ({type(exc).__name__})",
                hint="check apns.channels_endpoint and ca_file",
            ) from None
        if response.status >= 300:
            try:
                reason = str(json.loads(response.body).get("reason", ""))
            except ValueError:
                reason = ""
            reason = reason or f"HTTP {response.status}"
            if response.status == 403:
                raise AuthRefused(
                    f"APNs refused the credentials for the channel API ({reason})",
                    hint="check apns.key_file, key_id, team_id and topic",
                )
            if response.status in (404,) or reason in ("BadChannelId", "ChannelNotFound"):
                raise InputError(
                    f"no channel {channel_id} for {self.topic} ({reason})",
                    field="ID",
                    hint="pushctl channels list",
                )
            raise InputError(f"APNs refused the channel request: {response.status} {reason}")
        return response

    async def create(self, storage_policy: int = 0) -> str:
        """A new channel's id (base64); ``storage_policy`` 1 keeps the latest message for late joiners."""
        body = json.dumps({"message-storage-policy": storage_policy, "push-type": "LiveActivity"}).encode()
        response = await self._call("POST", "channels", body=body)
        return str(response.headers.get("apns-channel-id", ""))

    async def list(self) -> list[str]:
        """Every channel id of the app."""
        response = await self._call("GET", "all-channels")
        return [str(c) for c in json.loads(response.body).get("channels", [])]

    async def read(self, channel_id: str) -> dict[str, Any]:
        """The channel's settings (``message-storage-policy``, ``push-type``)."""
        response = await self._call("GET", "channels", channel_id)
        data: dict[str, Any] = json.loads(response.body)
        return data

    async def delete(self, channel_id: str) -> None:
        await self._call("DELETE", "channels", channel_id)


__all__ = ["BroadcastReport", "BroadcastSpec", "Channels", "Event", "run_broadcast"]
