"""The exception tree and the one exit-code table.

Per-device problems are *outcomes* (see :mod:`pushctl.outcome`), never exceptions.
Exceptions are for the run as a whole, and every one of them maps to one exit code::

    PushctlError                     base; carries a one-line message and an optional hint
    ├── InputError                   exit 2: a file, row, option or template the user must fix
    │   ├── ConfigError              config file / profile problems
    │   ├── AudienceError            audience file rows
    │   ├── TemplateError            template schema and rendering
    │   ├── PayloadError             a built payload breaks a protocol rule (size, keys)
    │   └── CredentialFileError      a credential file is the wrong kind / unreadable / incomplete
    ├── CredentialError              exit 3: a key, certificate or service account is unusable
    │   └── AuthRefused              the provider refused the credentials during a run
    ├── ProviderUnavailable          exit 4: the push service could not be reached at all
    ├── CampaignLocked               exit 5: another process is running this campaign
    └── Interrupted                  exit 130: Ctrl-C / SIGTERM

:func:`pushctl.cli.app.main` is the only place that turns these into exit codes and messages.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """Exit codes of every pushctl command (printed in ``--help`` and the README)."""

    OK = 0
    """Everything succeeded: all devices delivered, all tokens valid, all checks passed."""
    PARTIAL = 1
    """The run completed but some deliveries failed or some tokens are invalid."""
    USAGE = 2
    """Usage or input error: bad option, file, row, template or config."""
    AUTH = 3
    """Credentials unusable or refused by the provider."""
    UNAVAILABLE = 4
    """The push service could not be reached, or an internal error occurred."""
    LOCKED = 5
    """Another pushctl process is running the same campaign."""
    INTERRUPTED = 130
    """Interrupted (Ctrl-C or SIGTERM); results so far were written."""


EXIT_CODE_HELP: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.PARTIAL: "some deliveries failed / some tokens invalid",
    ExitCode.USAGE: "usage or input error (file, row, template, config)",
    ExitCode.AUTH: "credentials or authentication failure",
    ExitCode.UNAVAILABLE: "push service unreachable or internal error",
    ExitCode.LOCKED: "campaign locked by another running pushctl",
    ExitCode.INTERRUPTED: "interrupted (results so far were saved)",
}


def exit_code_table() -> str:
    """The exit-code table as plain text lines, for ``--help`` and the README."""
    return "\n".join(f"{int(code):>3}  {text}" for code, text in EXIT_CODE_HELP.items())


CLIP_CHARS = 60
"""How much of a user's value an error message repeats (see :func:`clip`)."""


def clip(value: object, limit: int = CLIP_CHARS, *, quote: bool = False) -> str:
    """``value`` as text for an error message, cut to ``limit`` characters.

    Messages repeat what the user wrote (a token, a column, an identifier); a 1 MB token must
    not come back as a 1 MB line. A cut value ends with ``…`` and its full length. ``quote``
    gives ``repr`` quoting, as ``{value!r}`` would.
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value) if quote else value
        head = repr(value[:limit]) if quote else value[:limit]
        return f"{head}… ({len(value):,} characters)"
    text = repr(value) if quote else str(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


class PushctlError(Exception):
    """Base of every error pushctl reports to the user as one line."""

    exit_code: ExitCode = ExitCode.UNAVAILABLE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class InputError(PushctlError):
    """Something the user gave us is wrong; ``location`` says where (file:line: field)."""

    exit_code = ExitCode.USAGE

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = clip(field, 100) if field else field
        super().__init__(message, hint=hint)

    @property
    def location(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(self.file if self.line is None else f"{self.file}:{self.line}")
        if self.field:
            parts.append(f"field '{self.field}'")
        return ": ".join(parts)

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return text if not self.hint else f"{text} ({self.hint})"


class ConfigError(InputError):
    """The config file or a profile is invalid."""


class AudienceError(InputError):
    """An audience row is invalid (and ``--on-bad-row fail`` is in force)."""


class TemplateError(InputError):
    """A template is invalid or cannot be rendered for a device."""


class PayloadError(InputError):
    """A built payload breaks a protocol rule, e.g. it is over the size limit."""


class CredentialFileError(InputError):
    """A credential file is unreadable, of the wrong kind (e.g. google-services.json) or incomplete."""


class CredentialError(PushctlError):
    """Credentials are unusable (expired certificate, failed check) or were refused."""

    exit_code = ExitCode.AUTH


class AuthRefused(CredentialError):
    """The push service refused our credentials; the campaign stops at once."""


class ProviderUnavailable(PushctlError):
    """The push service could not be reached (DNS, TCP, TLS, or it kept failing)."""

    exit_code = ExitCode.UNAVAILABLE


class CampaignLocked(PushctlError):
    """Another live process holds the campaign's lock."""

    exit_code = ExitCode.LOCKED


class Interrupted(PushctlError):
    """The run was interrupted by the user or a signal."""

    exit_code = ExitCode.INTERRUPTED
