"""A sampling profile of the gateway process while wrk drives one scenario (py-spy).

py-spy samples the running ``tongxing serve`` from outside (``--nonblocking``: the process is not
paused to read its stacks), so the profile costs the gateway almost nothing. Only threads that are
running are sampled (py-spy's default): the profile shows where CPU time goes, not time spent
waiting on PostgreSQL. The raw output (collapsed stacks, one line per distinct stack with its
sample count; ``flamegraph.pl`` or speedscope read it) is saved under ``bench/profiles/``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PROFILES = Path(__file__).with_name("profiles")
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")

# Where a sample's innermost frame lives, by a piece of its file path: first match wins.
AREAS: tuple[tuple[str, str], ...] = (
    ("sqlalchemy", "SQLAlchemy"),
    ("psycopg", "psycopg (PostgreSQL driver)"),
    ("joserfc", "joserfc (JWS)"),
    ("cryptography", "cryptography (signatures)"),
    ("cedarpy", "cedarpy (policies)"),
    ("authlib", "Authlib"),
    ("pydantic", "pydantic"),
    ("werkzeug", "Werkzeug"),
    ("flask", "Flask"),
    ("jinja2", "Jinja2"),
    ("waitress", "waitress"),
    ("granian", "granian"),
    ("requests", "requests/urllib3"),
    ("urllib3", "requests/urllib3"),
    ("logging", "logging"),
    ("json", "json"),
)


class ProfilerUnavailableError(Exception):
    """py-spy is not installed or may not attach to the gateway."""


def py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    found = shutil.which("py-spy")
    if found is None:
        raise ProfilerUnavailableError("py-spy is not installed (pip install py-spy)")
    return found


def start(
    pid: int,
    seconds: float,
    output: Path,
    *,
    rate: int = 250,
    gil: bool = True,
    nonblocking: bool = False,
) -> subprocess.Popen[bytes]:
    """Start recording ``pid`` for ``seconds``; wait for the returned process to finish."""
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(  # noqa: S603 - our own argv
        [
            py_spy(),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--subprocesses",  # the workers of `tongxing serve --workers N`
            *(["--gil"] if gil else []),
            *(["--nonblocking"] if nonblocking else []),
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@dataclass(frozen=True)
class Summary:
    samples: int
    by_area: list[tuple[str, int]]  # self samples by the library the innermost frame is in
    gateway_inclusive: list[tuple[str, int]]  # gateway functions, samples anywhere below them
    hottest_self: list[tuple[str, int]]  # functions by their own samples

    def lines(self, top: int = 12) -> list[str]:
        if self.samples == 0:
            return ["(no samples: was the gateway busy while py-spy recorded?)"]

        def pct(count: int) -> str:
            return f"{100 * count / self.samples:5.1f}%"

        out = [f"{self.samples} samples of running threads"]
        out.append("CPU by where the innermost frame is (self time):")
        out += [f"  {pct(n)}  {area}" for area, n in self.by_area[:top]]
        out.append("gateway functions, time spent in them and below (inclusive):")
        out += [f"  {pct(n)}  {name}" for name, n in self.gateway_inclusive[:top]]
        out.append("hottest functions (self time):")
        out += [f"  {pct(n)}  {name}" for name, n in self.hottest_self[:top]]
        return out


def _frame(text: str) -> tuple[str, str]:
    found = FRAME.match(text.strip())
    if found is None:
        return text.strip(), ""
    return found.group("function"), found.group("file")


def _is_gateway(file: str) -> bool:
    return file.startswith("gateway/") or "/gateway/" in file


def _area(file: str) -> str:
    if _is_gateway(file):
        return "gateway code"
    for piece, area in AREAS:
        if piece in file:
            return area
    return "other (interpreter, standard library)"


def _short(function: str, file: str) -> str:
    path = file
    for marker in ("/site-packages/", "/main/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{function} ({path})"


def summarize(raw: Path) -> Summary:
    """Aggregate py-spy's collapsed stacks: self time by library, inclusive time by function."""
    areas: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    hottest: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        function, file = frames[-1]
        areas[_area(file)] += count
        hottest[_short(function, file)] += count
        seen = set()
        for function, file in frames:
            if _is_gateway(file):
                name = _short(function, file)
                if name not in seen:
                    seen.add(name)
                    inclusive[name] += count
    return Summary(total, areas.most_common(), inclusive.most_common(), hottest.most_common())
