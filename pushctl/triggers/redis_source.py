"""Redis Streams as an event source, read by a consumer group.

``redis://HOST:6379/0?stream=events&group=pushctl&consumer=NAME`` (also ``claim_idle=60s``,
``start=0`` or ``$`` for a new group, ``dead_letter=STREAM``). Several ``trigger run`` processes in
one group share the stream: ``XREADGROUP`` hands each entry to one of them, each acknowledges
(``XACK``) only what its journal has committed, and entries a dead consumer left pending are
taken over with ``XAUTOCLAIM`` once idle for ``claim_idle``. A restarted consumer with the same
name first re-reads its own pending entries. Delivery is at least once; the journal's record of
seen event ids (and deterministic collapse ids) makes it exactly once on the device.

An entry holds the event as JSON in its ``event`` field, or as the entry's own fields (``data``
may then be a JSON object in a string).
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from pushctl.campaign import parse_duration
from pushctl.errors import InputError, ProviderUnavailable
from pushctl.inputs import loads_bounded
from pushctl.triggers.record import Record

__all__ = ["RedisSource"]

CLAIM_EVERY = 5.0
"""Seconds between XAUTOCLAIM sweeps for entries dead consumers left pending."""


class RedisSource:
    """A Redis stream read through a consumer group (see the module docstring)."""

    finite = False

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        group: str = "pushctl",
        consumer: str | None = None,
        start: str = "0",
        claim_idle: float = 60.0,
        dead_letter: str | None = None,
    ) -> None:
        self.url = url
        self.stream = stream
        self.group = group
        self.consumer = consumer or socket.gethostname()
        self.start = start
        self.claim_idle_ms = int(claim_idle * 1000)
        self.dead_letter_stream = dead_letter
        parts = urlsplit(url)
        self.name = f"redis:{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or '/0'}/{stream}"
        self.caught_up = False
        self.exhausted = False
        self._client: Any = None
        self._own_pending = True
        self._last_claim = 0.0
        self._claim_cursor = "0-0"

    @classmethod
    def from_url(cls, url: str, *, consumer: str | None = None) -> RedisSource:
        """Parse ``redis://host:port/db?stream=...&group=...`` (``--consumer`` wins over the URL's)."""
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        known = {"stream", "group", "consumer", "start", "claim_idle", "dead_letter"}
        for key in query:
            if key not in known:
                raise InputError(
                    f"unknown parameter '{key}' in the Redis URL",
                    field="--events",
                    hint=f"known: {', '.join(sorted(known))}",
                )
        if not query.get("stream"):
            raise InputError(
                "the Redis URL needs ?stream=NAME",
                field="--events",
                hint="e.g. redis://localhost:6379/0?stream=events&group=pushctl",
            )
        claim_idle = 60.0
        if "claim_idle" in query:
            claim_idle = parse_duration(query["claim_idle"], field="--events claim_idle").total_seconds()
        start = query.get("start", "0")
        if start not in ("0", "$"):
            raise InputError("start must be 0 (the whole stream) or $ (new entries only)", field="--events")
        base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return cls(
            base,
            stream=query["stream"],
            group=query.get("group", "pushctl"),
            consumer=consumer or query.get("consumer"),
            start=start,
            claim_idle=claim_idle,
            dead_letter=query.get("dead_letter"),
        )

    async def open(self) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError, ResponseError

        self._client = aioredis.Redis.from_url(self.url, decode_responses=True)
        try:
            await self._client.xgroup_create(self.stream, self.group, id=self.start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise ProviderUnavailable(f"Redis refused to create the group: {exc}") from None
        except (RedisError, OSError) as exc:
            await self.close()
            raise ProviderUnavailable(f"cannot reach Redis at {self.name}: {exc}") from None

    async def read(self, max_records: int, timeout: float) -> list[Record]:
        from redis.exceptions import RedisError

        client = self._client
        try:
            if self._own_pending:
                # After a restart: what this consumer was given but never acknowledged comes first.
                reply = await client.xreadgroup(
                    self.group, self.consumer, {self.stream: "0"}, count=max_records
                )
                records = self._records(reply)
                gone = [entry_id for _s, entries in reply or () for entry_id, fields in entries if not fields]
                if gone:  # deleted from the stream while pending: nothing to do but forget them
                    await client.xack(self.stream, self.group, *gone)
                if records:
                    return records
                self._own_pending = bool(gone)
            if time.monotonic() - self._last_claim >= CLAIM_EVERY:
                self._last_claim = time.monotonic()
                claimed = await self._claim(max_records)
                if claimed:
                    self.caught_up = False
                    return claimed
            block = max(1, int(timeout * 1000))
            reply = await client.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=max_records, block=block
            )
        except (RedisError, OSError) as exc:
            raise ProviderUnavailable(f"Redis at {self.name}: {exc}") from None
        records = self._records(reply)
        self.caught_up = len(records) < max_records
        return records

    async def _claim(self, max_records: int) -> list[Record]:
        reply = await self._client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            self.claim_idle_ms,
            start_id=self._claim_cursor,
            count=max_records,
        )
        cursor, entries = reply[0], reply[1]
        self._claim_cursor = cursor or "0-0"
        return [self._record(entry_id, fields) for entry_id, fields in entries if fields]

    def _records(self, reply: Any) -> list[Record]:
        records: list[Record] = []
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                if fields:  # a pending entry deleted from the stream comes back without fields
                    records.append(self._record(entry_id, fields))
        return records

    def _record(self, entry_id: str, fields: dict[str, str]) -> Record:
        where = f"{self.stream}/{entry_id}"
        text = fields.get("event") or fields.get("json")
        if text is not None:
            return Record(text, where, entry_id)
        obj: dict[str, Any] = dict(fields)
        if isinstance(obj.get("data"), str):
            try:
                obj["data"] = loads_bounded(obj["data"])
            except ValueError:
                return Record(b"", where, entry_id, problem="'data' is not a JSON object")
        return Record(obj, where, entry_id)

    async def ack(self, records: list[Record]) -> None:
        ids = [r.ack for r in records if r.ack]
        if ids:
            from redis.exceptions import RedisError

            try:
                await self._client.xack(self.stream, self.group, *ids)
            except (RedisError, OSError) as exc:
                # Unacknowledged entries come back (to us or another consumer): harmless, they are seen.
                raise ProviderUnavailable(f"Redis at {self.name}: {exc}") from None

    async def dead_letter(self, record: Record, reason: str) -> None:
        if self.dead_letter_stream:
            raw = record.text if isinstance(record.text, str) else json.dumps(record.text, default=str)
            await self._client.xadd(
                self.dead_letter_stream, {"event": raw, "reason": reason, "entry": record.where}
            )

    async def lag(self) -> int | None:
        """Entries not yet delivered to the group plus those delivered and not acknowledged."""
        try:
            groups = await self._client.xinfo_groups(self.stream)
        except Exception:
            return None
        for group in groups:
            if group.get("name") == self.group:
                lag = group.get("lag")
                return int(lag or 0) + int(group.get("pending") or 0)
        return None

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
