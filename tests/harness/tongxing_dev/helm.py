"""Helm 3, built from its published Go module like the control plane, for the chart's tests.

The wrapper module ``../helm`` names ``helm.sh/helm/v3/cmd/helm`` as a Go tool (``tool`` in its
``go.mod``; a ``main`` package cannot be imported, so there is no ``main.go``), pinning Helm and
every module it needs through ``go.sum``. ``go build`` makes the binary once per version and
input digest; it lands in ``bin/`` of the cache beside kube-apiserver. Every run gets its own
Helm home (cache, config, data), so nothing is read from or written to the user's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tongxing_dev.cache import cache_dir, file_digest
from tongxing_dev.errors import ComponentError
from tongxing_dev.process import run

COMPONENT = "helm"
MODULE_DIR = Path(__file__).resolve().parent.parent / "helm"
HELM_PACKAGE = "helm.sh/helm/v3/cmd/helm"


def _required_version(module: str) -> str:
    """The version of ``module`` the wrapper's ``go.mod`` requires."""
    pattern = rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)"
    match = re.search(pattern, (MODULE_DIR / "go.mod").read_text(), re.M)
    if match is None:
        raise ComponentError(COMPONENT, f"{MODULE_DIR}/go.mod does not require {module}")
    return match.group(1)


HELM_VERSION = _required_version("helm.sh/helm/v3")


def _ldflags() -> str:
    """What Helm's Makefile stamps: its version, and the Kubernetes version of its client-go.

    The Kubernetes version is what ``helm template`` and ``helm lint`` report as
    ``.Capabilities.KubeVersion`` when no cluster is asked (client-go ``v0.X`` is Kubernetes
    ``1.X``).
    """
    minor = _required_version("k8s.io/client-go").lstrip("v").split(".")[1]
    version = "helm.sh/helm/v3/internal/version"
    flags = [
        f"-X {version}.version={HELM_VERSION}",
        f"-X {version}.gitTreeState=clean",
    ]
    for package in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
        flags += [f"-X {package}.k8sVersionMajor=1", f"-X {package}.k8sVersionMinor={minor}"]
    return " ".join(["-s", "-w", *flags])


def obtain() -> Path:
    """Build (or find in the cache) the helm binary."""
    digest = file_digest(MODULE_DIR / "go.mod", MODULE_DIR / "go.sum")
    binary = cache_dir() / "bin" / f"helm-{HELM_VERSION}-{digest}"
    if binary.exists():
        return binary
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        raise ComponentError(COMPONENT, "the Go toolchain (`go`) is not installed")
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(binary.name + ".part")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
    run(
        COMPONENT,
        [go, "build", "-trimpath", f"-ldflags={_ldflags()}", "-o", str(partial), HELM_PACKAGE],
        cwd=MODULE_DIR,
        env=env,
        log=cache_dir() / "logs" / f"build-helm-{HELM_VERSION}.log",
    )
    partial.rename(binary)
    return binary


@dataclass(frozen=True)
class Helm:
    """The helm binary, run with a Helm home of its own."""

    binary: Path
    home: Path
    version: str = HELM_VERSION

    def env(self, kubeconfig: str | None = None) -> dict[str, str]:
        """The environment of a helm run: its own cache, config and data folders."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("HELM_") and key != "KUBECONFIG"
        }
        env.update(
            HELM_CACHE_HOME=str(self.home / "cache"),
            HELM_CONFIG_HOME=str(self.home / "config"),
            HELM_DATA_HOME=str(self.home / "data"),
        )
        # No kubeconfig given: one that does not exist, never the user's ~/.kube/config.
        env["KUBECONFIG"] = kubeconfig or str(self.home / "no-cluster")
        return env

    def run(
        self, *args: str, kubeconfig: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """``helm ARGS``; never raises for a non-zero exit (the tests read the message).

        Without ``kubeconfig`` helm is given none, so a command that would reach a cluster
        fails instead of finding one.
        """
        return subprocess.run(
            [str(self.binary), *args],
            env=self.env(kubeconfig),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def tool(home: Path) -> Helm:
    """Obtain helm and give it ``home`` (created) for its state."""
    home.mkdir(parents=True, exist_ok=True)
    return Helm(obtain(), home)
