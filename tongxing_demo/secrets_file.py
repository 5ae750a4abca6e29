"""The demo's secrets: generated once into a 0600 JSON file in the data folder, and reused.

The file holds the gateway's secrets, the portals' client secrets and the citizens' passwords,
so a restart keeps every login working.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

from pydantic import SecretStr

from gateway.settings import Settings
from tongxing_demo.errors import DemoError

SECRETS_FILE: Final = "secrets.json"
SECRETS_VERSION: Final = 1


class DemoSecrets:
    """Secrets generated once into a 0600 JSON file in the data folder, and reused."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._values: dict[str, str] = self._load()
        self._dirty = False

    def _load(self) -> dict[str, str]:
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            return {}
        if stat.S_IMODE(mode) & 0o077:
            raise DemoError(f"{self.path} is readable by others; chmod 600 it (or delete it)")
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise DemoError(
                f"{self.path} cannot be read ({type(error).__name__}); delete it to start afresh"
            ) from None
        if not isinstance(document, dict) or document.get("version") != SECRETS_VERSION:
            raise DemoError(f"{self.path} is not a demo secrets file; delete it to start afresh")
        values = document.get("secrets")
        if not isinstance(values, dict):
            raise DemoError(f"{self.path} is not a demo secrets file; delete it to start afresh")
        return {str(k): str(v) for k, v in values.items()}

    def get(
        self,
        name: str,
        make: Callable[[], str] | None = None,
        valid: Callable[[str], bool] | None = None,
    ) -> str:
        """The secret called ``name``, generated (by ``make``, default 43 random characters)
        if there is none yet, or if the one kept fails ``valid`` (rules that changed)."""
        kept = self._values.get(name)
        if kept is None or (valid is not None and not valid(kept)):
            self._values[name] = make() if make is not None else secrets.token_urlsafe(32)
            self._dirty = True
        return self._values[name]

    def save(self) -> None:
        if not self._dirty:
            return
        data = json.dumps({"version": SECRETS_VERSION, "secrets": self._values}, indent=2)
        descriptor, name = tempfile.mkstemp(dir=self.path.parent, prefix=".secrets.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                os.fchmod(stream.fileno(), 0o600)
                stream.write(data + "\n")
            Path(name).replace(self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                Path(name).unlink()
            raise
        self._dirty = False


def required_secrets() -> list[str]:
    """The gateway's secret settings without a default: the demo generates each one once."""
    return [
        name
        for name, spec in Settings.model_fields.items()
        if spec.annotation is SecretStr and spec.is_required()
    ]
