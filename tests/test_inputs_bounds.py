"""pushctl/inputs: bounded file reading, YAML, TOML and JSON; every refusal names its limit."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from pushctl.errors import CLIP_CHARS, ConfigError, InputError, TemplateError, clip
from pushctl.inputs import (
    MAX_JSON_DEPTH,
    JsonTooDeep,
    check_regular_file,
    load_toml,
    load_yaml,
    loads_bounded,
    read_bounded,
    read_bounded_text,
    size_text,
)


def test_read_bounded_reads_a_small_file(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"x" * 100)
    assert read_bounded(path, what="thing", limit=100) == b"x" * 100


def test_read_bounded_refuses_a_file_one_byte_over(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"x" * 1025)
    with pytest.raises(ConfigError, match="thing is larger than the 1 KB limit") as info:
        read_bounded(path, what="thing", limit=1024, error=ConfigError)
    assert info.value.file == str(path)


@pytest.mark.parametrize(
    ("path", "kind"), [("/dev/zero", "a character device"), ("/dev/null", "a character device")]
)
def test_devices_are_not_regular_files(path: str, kind: str) -> None:
    with pytest.raises(InputError, match=f"is not a regular file \\(it is {kind}\\)"):
        read_bounded(Path(path), what="template file", limit=1024)
    with pytest.raises(InputError, match="is not a regular file"):
        check_regular_file(Path(path), what="audience file")


def test_pipes_and_sockets_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes: opening it for reading must not wait
    with pytest.raises(InputError, match="it is a pipe"):
        read_bounded(fifo, what="config file", limit=1024)
    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(InputError, match="it is a socket"):
            check_regular_file(sock_path, what="audience file")


def test_missing_files_and_directories_say_so(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="template file not found"):
        read_bounded(tmp_path / "nope.yaml", what="template file", limit=10)
    with pytest.raises(InputError, match="is a directory"):
        read_bounded(tmp_path, what="template file", limit=10)
    with pytest.raises(InputError, match="is a directory"):
        check_regular_file(tmp_path, what="audience file")


def test_text_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"a = 1\nb = '\xff'\n")
    with pytest.raises(InputError, match="not UTF-8") as info:
        read_bounded_text(path, what="config file", limit=1024)
    assert info.value.line == 2


def test_size_text_names_limits_plainly() -> None:
    assert (size_text(1024 * 1024), size_text(64 * 1024), size_text(1000)) == ("1 MB", "64 KB", "1,000 bytes")


# -- YAML ------------------------------------------------------------------------------------


def test_yaml_loads_plain_documents_with_their_nodes() -> None:
    data, root = load_yaml("a: &x [1, 2]\nb: *x\n", file="t.yaml")
    assert data == {"a": [1, 2], "b": [1, 2]}
    assert root is not None and root.start_mark.line == 0


def test_yaml_alias_expansion_is_bounded_but_modest_reuse_is_fine() -> None:
    ok = "base: &b {title: hi, body: there}\n" + "".join(f"v{i}: *b\n" for i in range(100))
    assert len(load_yaml(ok, file="t.yaml")[0]) == 101
    bomb = "a: &a [" + ", ".join(["x"] * 30) + "]\nb: &b [" + ", ".join(["*a"] * 30) + "]\n"
    bomb += "c: [" + ", ".join(["*b"] * 30) + "]\n"
    with pytest.raises(TemplateError, match="more than the limit of 20,000 YAML nodes") as info:
        load_yaml(bomb, file="t.yaml", error=TemplateError)
    assert info.value.line is not None


def test_yaml_reader_errors_are_located() -> None:
    with pytest.raises(InputError, match="control character #x07") as info:
        load_yaml("a: 1\nb: x\x07\n", file="t.yaml")
    assert info.value.line == 2


def test_yaml_depth_recursion_and_giant_numbers_are_located() -> None:
    with pytest.raises(InputError, match="nested deeper than the limit of 64 levels"):
        load_yaml("a: " + "[" * 65 + "]" * 65, file="t.yaml")
    assert load_yaml("a: " + "[" * 60 + "]" * 60, file="t.yaml")[0] is not None
    with pytest.raises(InputError, match="recursive alias"):
        load_yaml("a: &a [*a]\n", file="t.yaml")
    with pytest.raises(InputError, match="5,000 digits") as info:
        load_yaml("a: 1\nttl: " + "9" * 5000 + "\n", file="t.yaml")
    assert info.value.line == 2
    with pytest.raises(InputError, match="invalid YAML value"):
        load_yaml("when: 2023-02-30\n", file="t.yaml")


def test_yaml_lone_surrogate_escapes_are_refused() -> None:
    with pytest.raises(InputError, match="half of a surrogate pair") as info:
        load_yaml('title: ok\nbody: "\\ud83d"\n', file="t.yaml")
    assert info.value.line == 2
    assert load_yaml('body: "\\U0001F600"\n', file="t.yaml")[0] == {"body": "😀"}


def test_yaml_merge_key_chains_do_not_overflow_the_stack() -> None:
    chain = "a0: &a0 {k: v}\n" + "".join(f"a{i}: &a{i} {{<<: *a{i - 1}}}\n" for i in range(1, 3000))
    try:
        load_yaml(chain, file="t.yaml")
    except InputError as exc:
        assert "limit" in exc.message


# -- TOML and JSON ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [("a = " + "[" * 3000 + "]" * 3000, "nested too deeply"), ("a = " + "9" * 5000, "4300 digits"),
     ("a = 1\nb = \n", "invalid TOML")],
)
def test_toml_errors_are_input_errors(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        load_toml(text, file="c.toml", error=ConfigError)
    assert info.value.file == "c.toml"


def test_toml_syntax_errors_keep_their_line() -> None:
    with pytest.raises(InputError) as info:
        load_toml("a = 1\n\nb = \n", file="c.toml")
    assert info.value.line == 3


def test_json_within_the_bound_parses_like_json_loads() -> None:
    text = json.dumps({"a": [[["x", "[[[["]]], "b": "{{{{"})
    assert loads_bounded(text) == json.loads(text)
    assert loads_bounded(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
def test_json_deeper_than_the_bound_is_a_value_error(depth: int) -> None:
    with pytest.raises(JsonTooDeep, match=f"limit of {MAX_JSON_DEPTH} levels"):
        loads_bounded("[" * depth + "]" * depth)
    assert isinstance(JsonTooDeep(3), ValueError)


def test_clip_cuts_long_values_and_says_how_long() -> None:
    assert clip("short") == "short"
    cut = clip("x" * 1_000_000)
    assert cut.startswith("x" * CLIP_CHARS + "…") and "1,000,000 characters" in cut and len(cut) < 100
    assert clip("a" * 100, quote=True).startswith("'aaa")
    assert clip(["y" * 500], 20).endswith("characters)")


def test_scenario_errors_without_status_and_rate_are_input_errors(tmp_path: Path) -> None:
    from pushctl.emulator import Scenario

    path = tmp_path / "s.toml"
    path.write_text("[[faults.errors]]\nretry_after = 1\n")
    with pytest.raises(InputError, match="missing status, rate"):
        Scenario.load(path)
