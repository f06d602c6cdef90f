"""examples/kubernetes/: the manifests are valid Kubernetes objects and fit pushctl.

Two judges, since `kubectl apply --dry-run=client` needs an API server to map kinds to resources
and to download the OpenAPI document it validates against, and a test has no cluster:

* `kubernetes-validate --strict` (PyPI, maintained; the JSON schemas of every Kubernetes release):
  every object checked against the schema of Kubernetes 1.31 (the oldest release with every
  field the Job uses turned on by default) and of the newest release it knows, unknown fields
  rejected;
* `kubectl apply --dry-run=client --validate=false` against a small local server that answers
  API discovery (and 404 to every object): kubectl itself reads the files and maps every kind
  (kubectl from PATH; else Debian's kubernetes-client, installed here when missing).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import kubernetes_validate
import pytest
import yaml

from pushctl.config import resolve_profile
from pushctl.message import Template

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "kubernetes"
OLDEST = "1.31.0"


def _objects() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((path.name, doc))
    return found


def _by_name(kind: str, name: str) -> dict[str, Any]:
    return next(doc for _f, doc in _objects() if doc["kind"] == kind and doc["metadata"]["name"] == name)


@pytest.mark.parametrize("version", [OLDEST, kubernetes_validate.latest_version()])
def test_every_manifest_matches_the_kubernetes_schema(version: str) -> None:
    objects = _objects()
    kinds = sorted({doc["kind"] for _f, doc in objects})
    assert kinds == ["ConfigMap", "Job", "PersistentVolumeClaim", "Secret"]
    for _filename, doc in objects:
        kubernetes_validate.validate(doc, version, strict=True)  # raises with the path of the problem
    # The judge is not blind: a misspelt field and a wrong type are refused.
    job = copy.deepcopy(_by_name("Job", "pushctl-spring-sale"))
    job["spec"]["backoffLimitPerIndexx"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, version, strict=True)
    job = copy.deepcopy(_by_name("Job", "pushctl-spring-sale"))
    job["spec"]["completions"] = "four"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, version, strict=True)


def test_the_job_sends_one_shard_per_index_into_its_own_journal() -> None:
    job = _by_name("Job", "pushctl-spring-sale")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["backoffLimitPerIndex"] >= 1
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    script = container["args"][0]
    assert f"--shard auto/{spec['completions']}" in script  # JOB_COMPLETION_INDEX picks the shard
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["journals"]["subPathExpr"] == "shard-$(SHARD_INDEX)"
    assert "--journal /journal/journal.sqlite3" in script
    index_env = next(e for e in container["env"] if e["name"] == "SHARD_INDEX")
    assert "job-completion-index" in index_env["valueFrom"]["fieldRef"]["fieldPath"]
    # The merge reads exactly those journals.
    merge_job = _by_name("Job", "pushctl-spring-sale-merge")
    merge = merge_job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "runs merge '/journals/shard-*/journal.sqlite3'" in merge
    # Every option the scripts give exists (pushctl refuses unknown options: exit 2).
    commands = [(), ("send",), ("runs", "merge"), ("runs", "show"), ("runs", "prune-list")]
    known = "".join(_help(*command) for command in commands)
    for option in set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", script + merge)):
        assert re.search(rf"(?<![\w-]){option}(?![\w-])", known), option


def _help(*command: str) -> str:
    argv = [sys.executable, "-m", "pushctl", *command, "--help"]
    env = {**os.environ, "COLUMNS": "300"}
    return subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout


def test_the_campaign_configmap_holds_a_template_and_a_profile_pushctl_loads(tmp_path: Path) -> None:
    data = _by_name("ConfigMap", "pushctl-spring-sale")["data"]
    (tmp_path / "template.yaml").write_text(data["template.yaml"])
    Template.load(tmp_path / "template.yaml")
    (tmp_path / "config.toml").write_text(data["config.toml"])
    profile = resolve_profile(tmp_path / "config.toml", None)
    assert profile.name == "production" and profile.apns.configured and profile.fcm.configured
    secret = _by_name("Secret", "pushctl-credentials")["stringData"]
    files = {Path(profile.apns.key_file or "").name, Path(profile.fcm.service_account or "").name}
    assert files <= set(secret)  # the profile names the files the Secret holds


class _Discovery(BaseHTTPRequestHandler):
    """API discovery for the kinds the examples use; every object is "not found" (404)."""

    RESOURCES: ClassVar[dict[str, list[tuple[str, str]]]] = {
        "/api/v1": [("configmaps", "ConfigMap"), ("secrets", "Secret"),
                    ("persistentvolumeclaims", "PersistentVolumeClaim")],
        "/apis/batch/v1": [("jobs", "Job")],
    }  # fmt: skip

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            batch = {"groupVersion": "batch/v1", "version": "v1"}
            group = {"name": "batch", "versions": [batch], "preferredVersion": batch}
            return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]})
        if path in self.RESOURCES:
            resources = [
                {"name": name, "singularName": kind.lower(), "namespaced": True, "kind": kind,
                 "verbs": ["create", "delete", "get", "list", "patch", "update"]}
                for name, kind in self.RESOURCES[path]
            ]  # fmt: skip
            group_version = path.removeprefix("/apis/").removeprefix("/api/")
            body = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version}
            return self._send(200, {**body, "resources": resources})
        status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound"}
        return self._send(404, {**status, "code": 404, "message": "not found"})


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discovery)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    path = tmp_path / "kubeconfig"
    url = f"http://127.0.0.1:{server.server_address[1]}"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: local\nusers: []\n"
        f"clusters: [{{name: local, cluster: {{server: '{url}'}}}}]\n"
        "contexts: [{name: local, context: {cluster: local, namespace: default}}]\n"
    )
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found:
        return found
    # Debian's kubectl (package kubernetes-client): the test set-up installs it when missing.
    subprocess.run(["apt-get", "install", "-y", "-q", "kubernetes-client"], check=False, capture_output=True)
    found = shutil.which("kubectl")
    if not found:
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        install = ["apt-get", "install", "-y", "-q", "kubernetes-client"]
        subprocess.run(install, check=True, capture_output=True)
        found = shutil.which("kubectl")
    assert found, "kubectl could not be installed (apt-get install kubernetes-client)"
    return found


def test_kubectl_apply_dry_run_accepts_every_manifest(kubeconfig: Path) -> None:
    proc = subprocess.run(
        [_kubectl(), "apply", "--dry-run=client", "--validate=false", "-f", str(EXAMPLES)],
        capture_output=True, text=True, env={"KUBECONFIG": str(kubeconfig), "HOME": str(kubeconfig.parent)},
        timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    created = set(proc.stdout.split("\n")) - {""}
    expected = {f"{doc['kind'].lower()}/{doc['metadata']['name']}" for _f, doc in _objects()}
    expected = {e.replace("job/", "job.batch/") for e in expected}
    assert created == {f"{e} created (dry run)" for e in expected}
