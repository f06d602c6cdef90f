"""--suppress files: plain text and CSV, token and user_id matches, errors with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushctl.campaign import SuppressionList
from pushctl.errors import InputError
from pushctl.model import Device, Platform


def device(token: str, **attrs: str) -> Device:
    return Device(token, Platform.IOS, dict(attrs))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_plain_text_matches_tokens_and_user_ids(tmp_path: Path) -> None:
    f = write(tmp_path / "optout.txt", "# opted out in December\n\ntok-1\n  user-42  \n# tok-2\n")
    sup = SuppressionList.load([f])
    assert sup.loaded == 2
    assert sup.reason_for(device("tok-1")) == "suppressed"
    assert sup.reason_for(device("other", user_id="user-42")) == "suppressed"
    assert sup.source_for(device("tok-1")) == "optout.txt"
    assert sup.reason_for(device("tok-2")) is None
    assert sup.reason_for(device("other", user_id="")) is None


def test_csv_columns_match_only_their_kind(tmp_path: Path) -> None:
    f = write(tmp_path / "complaints.csv", "email,token,user_id\na@x,tok-a,\nb@x,,u-b\nc@x,tok-c,u-c\n")
    sup = SuppressionList.load([f])
    assert sup.loaded == 4
    assert sup.reason_for(device("tok-a")) == "suppressed"
    assert sup.reason_for(device("zzz", user_id="u-b")) == "suppressed"
    assert sup.source_for(device("zzz", user_id="u-c")) == "complaints.csv"
    # a token listed in the token column does not suppress a user with that id
    assert sup.reason_for(device("zzz", user_id="tok-a")) is None
    assert sup.reason_for(device("u-b")) is None


def test_csv_detected_by_header_without_csv_suffix(tmp_path: Path) -> None:
    f = write(tmp_path / "export", "user_id,reason\nu1,unsubscribed\n")
    sup = SuppressionList.load([f])
    assert sup.reason_for(device("t", user_id="u1")) == "suppressed"
    assert sup.reason_for(device("unsubscribed")) is None


def test_several_files_and_counts(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", "t1\nt2\n")
    b = write(tmp_path / "b.csv", "token\nt2\nt3\n")
    sup = SuppressionList.load([a, b])
    assert sup.loaded == 4
    assert len(sup) == 3
    assert sup.source_for(device("t2")) == "b.csv"  # exact token column checked first
    assert sup.source_for(device("t1")) == "a.txt"
    assert SuppressionList.load([]).reason_for(device("t1")) is None


def test_bom_and_crlf(tmp_path: Path) -> None:
    f = tmp_path / "win.csv"
    f.write_bytes("\ufefftoken\r\ntok-1\r\n".encode())
    assert SuppressionList.load([f]).reason_for(device("tok-1")) == "suppressed"


def test_csv_without_a_usable_column_names_file_and_line(tmp_path: Path) -> None:
    f = write(tmp_path / "bad.csv", "# header follows\nemail,name\na@x,A\n")
    with pytest.raises(InputError) as info:
        SuppressionList.load([f])
    assert str(info.value).startswith(f"{f}:2: field '--suppress': no 'token' or 'user_id' column")


def test_csv_row_with_too_many_fields_names_file_and_line(tmp_path: Path) -> None:
    f = write(tmp_path / "bad.csv", "token\nt1\nt2,extra\n")
    with pytest.raises(InputError) as info:
        SuppressionList.load([f])
    assert info.value.file == str(f)
    assert info.value.line == 3


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such suppression file") as info:
        SuppressionList.load([tmp_path / "nope.txt"])
    assert info.value.file == str(tmp_path / "nope.txt")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(InputError, match="not UTF-8"):
        SuppressionList.load([binary])
