"""Buildah from Debian, and a Debian 12 base image made with debootstrap, to build the Dockerfile.

There is no Docker engine here and no container registry to pull ``python:3.11-slim-bookworm``
from, but Debian's package mirror is reachable: debootstrap makes a minimal Debian 12 with
Python 3.11 and venv (what the Dockerfile needs of its base), buildah commits it as a local
image once, and builds the Dockerfile on it with ``--build-arg BASE_IMAGE=...`` and chroot
isolation. Images live in buildah's own store (``/var/lib/containers``), tagged by the recipe's
digest; ``buildah rmi`` one to force a rebuild.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tongxing_dev import debian
from tongxing_dev.cache import cache_dir
from tongxing_dev.errors import ComponentError
from tongxing_dev.process import run

COMPONENT = "buildah"
BUILDAH = Path("/usr/bin/buildah")
DEBOOTSTRAP = Path("/usr/sbin/debootstrap")
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
_RECIPE = f"{SUITE} {MIRROR} {' '.join(PACKAGES)}"
BASE_IMAGE = f"localhost/tongxing-base:{SUITE}-" + hashlib.sha256(_RECIPE.encode()).hexdigest()[:12]


def _buildah(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUILDAH), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _image_exists(name: str) -> bool:
    return _buildah("inspect", "--type", "image", name).returncode == 0


def _base_image() -> str:
    """debootstrap a minimal Debian 12 with Python and commit it, once."""
    if _image_exists(BASE_IMAGE):
        return BASE_IMAGE
    log = cache_dir() / "logs" / "buildah-base.log"
    rootfs = cache_dir() / "buildah-base-rootfs.part"
    shutil.rmtree(rootfs, ignore_errors=True)
    run(
        COMPONENT,
        [
            str(DEBOOTSTRAP),
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(rootfs),
            MIRROR,
        ],
        log=log,
        timeout=900,
    )
    container = _buildah("from", "scratch").stdout.strip()
    if not container:
        raise ComponentError(COMPONENT, "`buildah from scratch` made no container")
    try:
        mount = _buildah("mount", container).stdout.strip()
        run(COMPONENT, ["cp", "-a", f"{rootfs}/.", f"{mount}/"], log=log)
        _buildah("umount", container)
        path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        run(COMPONENT, [str(BUILDAH), "config", "--env", path, container], log=log)
        run(COMPONENT, [str(BUILDAH), "commit", "--quiet", container, BASE_IMAGE], log=log)
    finally:
        _buildah("rm", container)
        shutil.rmtree(rootfs, ignore_errors=True)
    return BASE_IMAGE


def obtain() -> str:
    """Install buildah and debootstrap when missing; make the base image when missing."""
    debian.ensure(COMPONENT, ["buildah", "debootstrap"], BUILDAH)
    debian.ensure(COMPONENT, ["debootstrap"], DEBOOTSTRAP)
    return _base_image()


@dataclass(frozen=True)
class Buildah:
    """buildah with the local base image the Dockerfile is built on."""

    base_image: str

    def build(self, context: Path, tag: str, log: Path) -> None:
        """``buildah bud`` the Dockerfile in ``context`` as ``tag``.

        Layers are cached, so a rebuild after a source change reinstalls only the wheel. When
        pip trusts an extra CA here (a TLS-intercepting proxy), it is handed to the build as the
        ``pip-ca`` build secret, which never lands in a layer.
        """
        argv = [
            str(BUILDAH),
            "bud",
            "--isolation=chroot",
            "--layers",
            "--format=docker",  # keeps HEALTHCHECK (the OCI format has none)
            f"--build-arg=BASE_IMAGE={self.base_image}",
            f"--tag={tag}",
        ]
        ca = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
        if ca and Path(ca).is_file():
            argv.append(f"--secret=id=pip-ca,src={ca}")
        run(COMPONENT, [*argv, str(context)], log=log, timeout=1200)


def tool() -> Buildah:
    return Buildah(obtain())
