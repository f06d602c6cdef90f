"""Reading what users hand pushctl, within limits: files (regular files only, a maximum size per
kind), YAML (bounded nesting and alias expansion, every error located), TOML and JSON (bounded
nesting).

Every parser of user input starts here, so a hostile file is a one-line located error naming
the limit, never a hang, a memory blow-up or an internal error.
"""

from pushctl.inputs.files import (
    CA_MAX_BYTES,
    CONFIG_MAX_BYTES,
    CREDENTIAL_MAX_BYTES,
    SCENARIO_MAX_BYTES,
    TEMPLATE_MAX_BYTES,
    check_regular_file,
    read_bounded,
    read_bounded_text,
    size_text,
)
from pushctl.inputs.json_bounded import MAX_JSON_DEPTH, JsonTooDeep, loads_bounded
from pushctl.inputs.toml_bounded import load_toml
from pushctl.inputs.yaml_bounded import MAX_DEPTH as MAX_YAML_DEPTH
from pushctl.inputs.yaml_bounded import MAX_NODES as MAX_YAML_NODES
from pushctl.inputs.yaml_bounded import load_yaml

__all__ = [
    "CA_MAX_BYTES",
    "CONFIG_MAX_BYTES",
    "CREDENTIAL_MAX_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "SCENARIO_MAX_BYTES",
    "TEMPLATE_MAX_BYTES",
    "JsonTooDeep",
    "check_regular_file",
    "load_toml",
    "load_yaml",
    "loads_bounded",
    "read_bounded",
    "read_bounded_text",
    "size_text",
]
