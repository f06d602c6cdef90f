"""AudienceReader: formats, stdin, inference, bad rows, duplicates, fingerprints."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from pushctl.audience import AudienceReader, BadRow
from pushctl.errors import AudienceError, ExitCode
from pushctl.model import Platform

APNS = "a4c123b1612dd272d1371c17149d439536b3216fdaeeb975729fae923d5a4fd1"
APNS2 = "ac2f86702824c1c099724caf4941d4072014b3ce107f80e222f828767efc2f91"
FCM = "jORS_6ilI8ihN5KXSc7Tvo:APA91b_hBKqFYY_kv5ZJr3J1TWDtkwtDDb-xHKas1VOqg6YYZYn9ZhyiA4uoRgnatmUdjAWt"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_sample_csv(samples: Path) -> None:
    reader = AudienceReader(samples / "audience.csv")
    devices = list(reader)
    assert len(devices) == 15 and reader.stats.rows == 15 and reader.stats.bad_rows == 0
    first = devices[0]
    assert first.platform is Platform.IOS and first.line == 2
    assert first.attrs == {
        "name": "Alice", "locale": "en", "timezone": "America/New_York", "user_id": "u1001",
    }
    assert {d.attrs["locale"] for d in devices} == {"en", "fr", "zh-CN", "de", "es"}
    assert any(d.token.startswith("dead") for d in devices)
    assert [d.token for d in devices if d.platform is Platform.WEB]
    web = next(d for d in devices if d.platform is Platform.WEBPUSH)
    assert web.token.startswith("https://") and set(web.attrs) >= {"p256dh", "auth"}
    assert [d.attrs["name"] for d in devices if d.platform is Platform.HMS] == ["Wang Fang"]


def test_sample_jsonl_and_text(samples: Path) -> None:
    jsonl = list(AudienceReader(samples / "audience.jsonl"))
    assert len(jsonl) == 4
    assert jsonl[0].attrs["visits"] == "12"  # numbers become strings
    text = list(AudienceReader(samples / "audience.txt"))
    assert [d.platform for d in text] == [Platform.IOS, Platform.ANDROID, Platform.IOS, Platform.ANDROID]
    # The Xcode-style "<xxxxxxxx xxxxxxxx ...>" line is cleaned to 64 hex chars.
    assert len(text[2].token) == 64 and text[2].line == 7


def test_csv_platform_aliases_inference_and_empty_attrs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.csv",
        f"Token , Platform,name,locale\n{APNS},APNS,Ann,\n{FCM},fcm,,de\n{APNS2},,Cy,en\n",
    )
    devices = list(AudienceReader(path))
    assert [d.platform for d in devices] == [Platform.IOS, Platform.ANDROID, Platform.IOS]
    assert devices[0].attrs == {"name": "Ann"}
    assert devices[1].attrs == {"locale": "de"}


def test_csv_missing_token_column_names_file_line_and_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "device,platform\nabc,ios\n")
    with pytest.raises(AudienceError) as info:
        list(AudienceReader(path))
    assert str(info.value).startswith(f"{path}:1: field 'token': no 'token' column")
    assert "'device', 'platform'" in str(info.value)
    assert info.value.exit_code is ExitCode.USAGE


def test_csv_multiline_record_reports_its_first_line(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", f'token,note\n{APNS},"two\nlines"\nnot hex!,x\n')
    reader = AudienceReader(path, on_bad_row="skip", fmt="csv")
    devices = list(reader)
    assert devices[0].attrs["note"] == "two\nlines"
    assert [b.line for b in reader.stats.bad_samples] == [4]


def test_bad_row_fail_raises_with_location(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", f"token,platform\n{APNS},ios\nzz{APNS[2:]},ios\n")
    reader = AudienceReader(path)
    with pytest.raises(AudienceError) as info:
        list(reader)
    err = info.value
    assert (err.file, err.line, err.field) == (str(path), 3, "token")
    assert str(err).startswith(f"{path}:3: field 'token': APNs tokens are hex")


def test_bad_rows_skip_counts_samples_and_calls_back(samples: Path) -> None:
    skipped: list[BadRow] = []
    reader = AudienceReader(samples / "audience-bad-rows.csv", on_bad_row="skip", on_skip=skipped.append)
    devices = list(reader)
    assert [d.line for d in devices] == [2, 3, 8]
    assert [(b.line, b.field) for b in skipped] == [(4, "token"), (5, "platform"), (6, "token")]
    assert reader.stats.bad_samples == skipped and reader.stats.bad_rows == 3
    assert str(skipped[1]).startswith(f"{samples / 'audience-bad-rows.csv'}:5: field 'platform': unknown")
    assert reader.stats.duplicates == 1
    dup = reader.stats.duplicate_samples[0]
    assert (dup.line, dup.first_line) == (7, 2)
    assert reader.stats.rows == 7 and reader.stats.devices == 3


def test_dedupe_off_yields_duplicates(samples: Path) -> None:
    reader = AudienceReader(samples / "audience-bad-rows.csv", on_bad_row="skip", dedupe=False)
    assert [d.line for d in reader] == [2, 3, 7, 8]
    assert reader.stats.duplicates == 0


def test_uninferable_and_web_push_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "a.txt", "# comment\n\nshort\nhttps://updates.push.services.mozilla.com/wpush/v2/x\n")
    reader = AudienceReader(path, on_bad_row="skip")
    assert list(reader) == []
    first, second = reader.stats.bad_samples
    assert first.line == 3 and "add a platform column" in first.message
    # A bare endpoint is a Web Push subscription without its keys: say what to add.
    assert second.line == 4 and "add p256dh and auth columns" in second.message


def test_jsonl_bad_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.ndjson",
        f'{{"token": "{APNS}", "n": 1.5, "vip": true, "x": null}}\n'
        "not json\n"
        "[1, 2]\n"
        '{"name": "no token"}\n'
        f'{{"token": "{FCM}", "prefs": {{"a": 1}}}}\n',
    )
    reader = AudienceReader(path, on_bad_row="skip")
    devices = list(reader)
    assert len(devices) == 1 and devices[0].attrs == {"n": "1.5", "vip": "true"}
    where = [(b.line, b.field) for b in reader.stats.bad_samples]
    assert where == [(2, ""), (3, ""), (4, "token"), (5, "prefs")]
    assert "nested" in reader.stats.bad_samples[3].message


@pytest.mark.parametrize(
    ("text", "platforms"),
    [
        (f"token,platform\n{APNS},ios\n{FCM},android\n", [Platform.IOS, Platform.ANDROID]),
        (f'{{"token": "{FCM}"}}\n', [Platform.ANDROID]),
        (f"{APNS}\n{FCM}\n", [Platform.IOS, Platform.ANDROID]),
    ],
    ids=["csv", "jsonl", "text"],
)
def test_stdin_sniffs_format_and_fingerprints(text: str, platforms: list[Platform]) -> None:
    reader = AudienceReader("-", stdin=io.StringIO(text))
    assert reader.source == "<stdin>"
    with pytest.raises(RuntimeError):
        reader.fingerprint()  # not read yet
    devices = list(reader)
    assert [d.platform for d in devices] == platforms
    assert {d.source for d in devices} == {"<stdin>"}
    assert reader.fingerprint() == hashlib.sha256(text.encode()).hexdigest()


def test_file_fingerprint_without_iterating(samples: Path) -> None:
    path = samples / "audience.csv"
    assert AudienceReader(path).fingerprint() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_file_and_one_pass(tmp_path: Path, samples: Path) -> None:
    with pytest.raises(AudienceError, match="no such file"):
        AudienceReader(tmp_path / "nope.csv")
    reader = AudienceReader(samples / "audience.txt")
    list(reader)
    with pytest.raises(RuntimeError):
        iter(reader)


def test_not_utf8_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(APNS.encode() + b"\n\xff\xfe\n")
    with pytest.raises(AudienceError, match="not UTF-8"):
        list(AudienceReader(path))
