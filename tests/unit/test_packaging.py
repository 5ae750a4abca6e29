"""The tongxing distribution's package list (pyproject.toml) against the checkout.

setuptools ships only the packages listed in ``[tool.setuptools] packages``: a new subpackage, or
a folder of templates, that is not listed works in the editable checkout and is missing from the
wheel and the image. The test harness is a distribution of its own, never in this one.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("gateway", "realm_operator", "tongxing_api", "tongxing_demo")


def setuptools_config() -> dict[str, Any]:
    with (REPO / "pyproject.toml").open("rb") as stream:
        config: dict[str, Any] = tomllib.load(stream)
    return config


def folder_of(package: str, package_dir: dict[str, str]) -> Path:
    """Where setuptools finds ``package``: the longest mapped prefix, then the rest as folders."""
    parts = package.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in package_dir:
            return REPO / package_dir[prefix] / Path(*parts[end:])
    return REPO / Path(*parts)


def shipped_folders(root: Path) -> set[Path]:
    """``root`` and every folder below it that holds a file (caches and build output aside)."""
    found = {root}
    for path in root.rglob("*"):
        if path.is_file() and not any(
            part == "__pycache__" or part.endswith(".egg-info") for part in path.parts
        ):
            found.add(path.parent)
    return found


def test_every_folder_of_the_product_and_the_demo_is_a_listed_package() -> None:
    config = setuptools_config()["tool"]["setuptools"]
    package_dir: dict[str, str] = config["package-dir"]
    listed = {folder_of(name, package_dir).resolve() for name in config["packages"]}
    for root in ROOTS:
        for folder in shipped_folders(folder_of(root, package_dir)):
            assert folder.resolve() in listed, (
                f"{folder.relative_to(REPO)} is not in pyproject.toml's packages"
            )
    for name in config["packages"]:
        assert folder_of(name, package_dir).is_dir(), f"{name} is listed but has no folder"


def test_the_harness_is_a_distribution_of_its_own() -> None:
    product = setuptools_config()
    assert not any(
        name.startswith("tongxing_dev") for name in product["tool"]["setuptools"]["packages"]
    )
    assert "tongxing-dev" not in product["project"]["scripts"]
    with (REPO / "tests" / "harness" / "pyproject.toml").open("rb") as stream:
        harness = tomllib.load(stream)
    assert harness["project"]["name"] == "tongxing-dev"
    assert harness["project"]["scripts"] == {"tongxing-dev": "tongxing_dev.cli:main"}
