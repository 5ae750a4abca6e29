"""Servers that come from Debian's packages: installed with apt-get when they are missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tongxing_dev.cache import cache_dir
from tongxing_dev.errors import ComponentError
from tongxing_dev.process import run


def ensure(component: str, packages: list[str], present: Path) -> None:
    """Install ``packages`` unless ``present`` exists already.

    On a fresh machine the package lists may be missing or old, so a failed install is retried
    once after ``apt-get update``.
    """
    if present.exists():
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise ComponentError(
            component,
            f"{present} is missing and cannot be installed here (needs root and apt-get): "
            f"install the Debian packages {' '.join(packages)}",
        )
    log = cache_dir() / "logs" / f"apt-{component}.log"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    try:
        run(component, install, log=log, env=env)
    except ComponentError:
        run(component, ["apt-get", "update"], log=log, env=env)
        run(component, install, log=log, env=env)
    if not present.exists():
        raise ComponentError(component, f"installed {' '.join(packages)} but {present} is missing")
