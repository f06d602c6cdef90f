"""Fuzzing config TOML (and its environment variables), credential files and emulator scenarios
(see fuzz_support.py)."""

from __future__ import annotations

import contextlib
import itertools
import json
from pathlib import Path

import tomli_w
from fuzz_support import FAST, any_bytes, any_text, fresh, pieces
from hypothesis import given
from hypothesis import strategies as st

from pushctl.config import resolve_profile
from pushctl.credentials import load_apns_certificate, load_apns_key, load_service_account
from pushctl.emulator import Scenario
from pushctl.errors import CredentialError, InputError

_names = itertools.count()

# -- config --------------------------------------------------------------------------------------

TOML_PIECES = [
    "[profiles.p]",
    "[profiles.p.apns]",
    "[profiles.p.sender]",
    "[profiles.p.fcm]",
    "[[profiles]]",
    "\n",
    "default_profile = ",
    '"p"',
    "key_file = ",
    "topic = ",
    "concurrency = ",
    "rate = ",
    "max_attempts = ",
    "environment = ",
    '"sandbox"',
    "endpoint = ",
    '"https://x"',
    "ca_file = ",
    "-1",
    "1e999",
    "inf",
    "nan",
    "9" * 5000,
    "= [",
    "[",
    "]",
    "{",
    "}",
    "a = ",
    '"',
    "'",
    "\x01",
    "true",
    "2023-02-30",
    "#",
    ".",
    "x.y = 1",
]
toml_text = st.one_of(any_text, pieces(*TOML_PIECES))
toml_value = st.one_of(
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)
toml_doc = st.fixed_dictionaries(
    {
        "profiles": st.dictionaries(
            st.sampled_from(["p", "q"]),
            st.dictionaries(
                st.sampled_from(["apns", "fcm", "sender", "ca_file", "x"]),
                st.one_of(
                    toml_value,
                    st.dictionaries(
                        st.sampled_from(
                            [
                                "key_file",
                                "key_id",
                                "topic",
                                "environment",
                                "endpoint",
                                "service_account",
                                "concurrency",
                                "rate",
                                "max_attempts",
                                "cap",
                                "y",
                            ]
                        ),
                        toml_value,
                        max_size=4,
                    ),
                ),
                max_size=3,
            ),
            max_size=2,
        )
    },
    optional={"default_profile": st.one_of(st.sampled_from(["p", "q", "r"]), toml_value)},
).map(tomli_w.dumps)


@FAST
@given(text=st.one_of(toml_text, toml_doc), name=st.sampled_from([None, "p", "q"]))
def test_config_files(tmp_path: Path, text: str, name: str | None) -> None:
    path = fresh(tmp_path, ".toml", text)
    with contextlib.suppress(InputError):
        resolve_profile(path, name, env={})


@FAST
@given(
    env=st.dictionaries(
        st.sampled_from(
            [
                "PUSHCTL_CONCURRENCY",
                "PUSHCTL_RATE",
                "PUSHCTL_MAX_ATTEMPTS",
                "PUSHCTL_APNS_ENVIRONMENT",
                "PUSHCTL_FCM_ENDPOINT",
            ]
        ),
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30),
    )
)
def test_config_environment(env: dict[str, str]) -> None:
    with contextlib.suppress(InputError):
        resolve_profile(None, None, env=env)


# -- credentials ---------------------------------------------------------------------------------

PEM_PIECES = [
    "-----BEGIN PRIVATE KEY-----\n",
    "-----END PRIVATE KEY-----\n",
    "-----BEGIN CERTIFICATE-----\n",
    "-----END CERTIFICATE-----\n",
    "-----BEGIN EC PRIVATE KEY-----\n",
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49",
    "AwEHBG0wawIBAQQg",
    "=\n",
    "\n",
    "{",
    "}",
    '"type": "service_account"',
    '"private_key": ',
    '"project_info": {}',
    "[" * 100,
]
sa_doc = st.fixed_dictionaries(
    {},
    optional={
        k: st.one_of(
            st.text(max_size=30),
            st.integers(),
            st.none(),
            st.lists(st.integers(), max_size=2),
            st.sampled_from(["service_account", "-----BEGIN PRIVATE KEY-----\nAAAA\n"]),
        )
        for k in (
            "type",
            "project_id",
            "private_key_id",
            "private_key",
            "client_email",
            "token_uri",
            "project_info",
            "client",
        )
    },
).map(json.dumps)
credential_data = st.one_of(
    any_bytes, pieces(*PEM_PIECES).map(str.encode), sa_doc.map(str.encode), st.just(b"[" * 100_000)
)


@FAST
@given(data=credential_data, name=st.sampled_from(["AuthKey_ABCDEFGHIJ.p8", "key.p8", "sa.json", "cert.p12"]))
def test_credential_files(tmp_path: Path, data: bytes, name: str) -> None:
    path = tmp_path / f"{next(_names)}-{name}"
    path.write_bytes(data)
    for load in (
        lambda: load_apns_key(path, None, "ABCDEFGHIJ"),
        lambda: load_service_account(path),
        lambda: load_apns_certificate(path, key_path=None, password=None),
        lambda: load_apns_certificate(path, key_path=path, password=b"x"),
    ):
        with contextlib.suppress(InputError, CredentialError):
            load()


# -- scenario files ------------------------------------------------------------------------------

SCENARIO_PIECES = [
    "seed = ",
    "[options]",
    "[faults]",
    "[registry]",
    "[[faults.errors]]",
    "[registry.files]",
    "\n",
    "max_concurrent_streams = ",
    "goaway_after = ",
    "drop_rate = ",
    "status = ",
    "rate = ",
    "retry_after = ",
    "latency_ms = ",
    "{min = 1, max = 5}",
    '{distribution = "exponential"}',
    "environment = ",
    '"sandbox"',
    '"nope"',
    "-1",
    "1.5",
    "0",
    "9" * 5000,
    "[",
    "]",
    "=",
    '"x"',
    "apns_keys = ",
    "[{path = 1}]",
    "unregistered = ",
    '["ab"]',
    "fcm_quota_per_second = ",
    "true",
]
scenario_text = st.one_of(any_text, pieces(*SCENARIO_PIECES))


@FAST
@given(text=scenario_text)
def test_scenario_files(tmp_path: Path, text: str) -> None:
    path = fresh(tmp_path, ".toml", text)
    with contextlib.suppress(InputError):
        Scenario.load(path)
