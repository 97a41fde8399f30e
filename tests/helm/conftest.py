"""Fixtures for the Helm chart tests: a pinned Helm (installed by scripts/helm on
first use), rendering with caching, and the real service binaries.

Environment:
  SCIMTRAIL_BIN_DIR   directory of scimtrail-{ingest,enricher,detector,sink}
                      (default <repo>/target/debug)
  SCIMTRAIL_CACHE     where scripts/helm keeps Helm (default ~/.cache/scimtrail)
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "scimtrail"
VALUES_DIR = REPO / "helm" / "values"
HELM_SCRIPT = REPO / "scripts" / "helm"
RELEASE = "st"
NAMESPACE = "scimtrail-test"


def values_files() -> list[Path]:
    return sorted(VALUES_DIR.glob("*.yaml"))


class Helm:
    """Runs the Helm binary scripts/helm installed; caches renders."""

    def __init__(self, binary: str, tmp: Path):
        self.binary = binary
        self.tmp = tmp
        self._cache: dict[tuple, subprocess.CompletedProcess] = {}
        self.scenario_files: dict[str, str] = {}
        self._n = 0

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.binary, *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def values_file(self, values: dict) -> str:
        """Writes a values dict to a file; returns its path."""
        self._n += 1
        path = self.tmp / f"values-{self._n}.yaml"
        path.write_text(yaml.safe_dump(values, sort_keys=False))
        return str(path)

    def template_raw(self, *args: str) -> subprocess.CompletedProcess:
        key = args
        if key not in self._cache:
            self._cache[key] = self.run(
                "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args
            )
        return self._cache[key]

    def template(self, *args: str) -> list[dict]:
        """Renders the chart; returns the parsed documents (fails on an error)."""
        proc = self.template_raw(*args)
        assert proc.returncode == 0, f"helm template {' '.join(args)} failed:\n{proc.stderr}"
        return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.fixture(scope="session")
def helm(tmp_path_factory) -> Helm:
    proc = subprocess.run(
        [str(HELM_SCRIPT), "--install-only"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, f"scripts/helm --install-only failed:\n{proc.stderr}"
    return Helm(proc.stdout.strip().splitlines()[-1], tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    d = Path(os.environ.get("SCIMTRAIL_BIN_DIR") or REPO / "target" / "debug")
    missing = [s for s in ("ingest", "enricher", "detector", "sink") if not (d / f"scimtrail-{s}").is_file()]
    assert not missing, (
        f"service binaries missing in {d}: {missing}; build them (cargo build --bins) "
        "or point SCIMTRAIL_BIN_DIR at them"
    )
    for s in ("ingest", "enricher", "detector", "sink"):
        out = subprocess.run(
            [str(d / f"scimtrail-{s}"), "--help"], capture_output=True, text=True, timeout=30
        ).stdout
        assert "--check-config" in out, f"{d}/scimtrail-{s} has no --check-config flag; rebuild it"
    return d


def pretty(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
