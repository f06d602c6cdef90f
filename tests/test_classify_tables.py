"""Every row of the fact sheet's APNs and FCM error tables, as classified."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from pushctl.providers.base import AttemptKind, classify_apns, classify_fcm, parse_retry_after

K = AttemptKind

APNS_ROWS = [
    (200, "", K.DELIVERED),
    (400, "BadDeviceToken", K.INVALID_TOKEN),
    (400, "DeviceTokenNotForTopic", K.INVALID_TOKEN),
    *[
        (400, r, K.REJECTED)
        for r in ("BadCollapseId", "BadExpirationDate", "BadMessageId", "BadPriority", "BadTopic",
                  "DuplicateHeaders", "InvalidPushType", "MissingDeviceToken", "MissingTopic",
                  "PayloadEmpty", "TopicDisallowed")
    ],
    (400, "IdleTimeout", K.RETRYABLE),
    (403, "ExpiredProviderToken", K.RETRYABLE),
    *[
        (403, r, K.AUTH_FAILED)
        for r in ("InvalidProviderToken", "MissingProviderToken", "UnrelatedKeyIdInToken",
                  "BadEnvironmentKeyIdInToken", "BadCertificate", "BadCertificateEnvironment", "Forbidden")
    ],
    (404, "BadPath", K.REJECTED),
    (405, "MethodNotAllowed", K.REJECTED),
    (410, "Unregistered", K.INVALID_TOKEN),
    (410, "ExpiredToken", K.INVALID_TOKEN),
    (413, "PayloadTooLarge", K.REJECTED),
    (429, "TooManyRequests", K.RETRYABLE),
    (429, "TooManyProviderTokenUpdates", K.RETRYABLE),
    (500, "InternalServerError", K.RETRYABLE),
    (503, "ServiceUnavailable", K.RETRYABLE),
    (503, "Shutdown", K.RETRYABLE),
    # Fallbacks on the status when the reason is unknown or missing.
    (400, "SomethingNew", K.REJECTED),
    (403, "SomethingNew", K.AUTH_FAILED),
    (410, "", K.INVALID_TOKEN),
    (429, "", K.RETRYABLE),
    (502, "", K.RETRYABLE),
]


@pytest.mark.parametrize(("status", "reason", "kind"), APNS_ROWS)
def test_apns_table(status: int, reason: str, kind: AttemptKind) -> None:
    attempt = classify_apns(status, reason, 2.5)
    assert attempt.kind is kind
    assert attempt.status == status
    assert attempt.reason == (reason or ("" if status == 200 else f"HTTP {status}"))
    # 429 and 503 may speak for the whole provider (when they come in a burst).
    assert attempt.provider_wide is (status in (429, 503))
    # Retry-After only matters (and is only carried) where a retry happens.
    assert attempt.retry_after == (2.5 if kind is K.RETRYABLE else None)


TOKEN_MSG = "The registration token is not a valid FCM registration token"

FCM_ROWS = [
    # status, errorCode, error.status, message, kind, provider_wide
    (200, None, "", "", K.DELIVERED, False),
    (404, "UNREGISTERED", "NOT_FOUND", "Requested entity was not found.", K.INVALID_TOKEN, False),
    (403, "SENDER_ID_MISMATCH", "PERMISSION_DENIED", "SenderId mismatch", K.INVALID_TOKEN, False),
    (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", TOKEN_MSG, K.INVALID_TOKEN, False),
    (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid value at 'message.data[0]'", K.REJECTED, False),
    (429, "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric", K.RETRYABLE, True),
    (429, "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", "Device message rate exceeded.", K.RETRYABLE, False),
    (503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.", K.RETRYABLE, True),
    (500, "INTERNAL", "INTERNAL", "Internal error encountered.", K.RETRYABLE, False),
    (401, "THIRD_PARTY_AUTH_ERROR", "UNAUTHENTICATED", "Auth error from APNS", K.AUTH_FAILED, False),
    (401, None, "UNAUTHENTICATED", "Request had invalid authentication credentials.", K.AUTH_FAILED, False),
    (403, None, "PERMISSION_DENIED", "Permission denied", K.AUTH_FAILED, False),
    # errorCode missing: the top-level status, then the HTTP status decide.
    (400, None, "INVALID_ARGUMENT", TOKEN_MSG, K.INVALID_TOKEN, False),
    (429, None, "RESOURCE_EXHAUSTED", "Quota exceeded", K.RETRYABLE, True),
    (500, None, "", "", K.RETRYABLE, False),
    (503, None, "", "", K.RETRYABLE, True),
    (401, None, "", "", K.AUTH_FAILED, False),
    (404, None, "NOT_FOUND", "no such project", K.REJECTED, False),
]


@pytest.mark.parametrize(("status", "code", "status_text", "message", "kind", "wide"), FCM_ROWS)
def test_fcm_table(
    status: int, code: str | None, status_text: str, message: str, kind: AttemptKind, wide: bool
) -> None:
    attempt = classify_fcm(status, code, status_text, message, 4.0)
    assert attempt.kind is kind
    assert attempt.status == status
    assert attempt.provider_wide is wide
    if kind is not K.DELIVERED:
        # The specific errorCode is the reason when there is one, not the generic status.
        assert attempt.reason == (code or status_text or f"HTTP {status}")
    assert attempt.retry_after == (4.0 if kind is K.RETRYABLE else None)


def test_retry_after_seconds() -> None:
    assert parse_retry_after("120", now=0.0) == 120.0
    assert parse_retry_after(" 1.5 ", now=0.0) == 1.5
    assert parse_retry_after("-3", now=0.0) == 0.0


def test_retry_after_http_date() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert later == "Wed, 01 May 2024 12:00:30 GMT"
    assert parse_retry_after(later, now) == pytest.approx(30.0)
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("Wed, 01 May 2024 12:00:10 -0000", now) == pytest.approx(10.0)


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf", "Wed, 99 Foo 2024"])
def test_retry_after_unparseable(value: str | None) -> None:
    assert parse_retry_after(value, now=0.0) is None
