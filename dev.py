#!/usr/bin/env python3
"""Project entry points that work on a fresh machine with only Python 3.10+.

    python3 dev.py main    # create .venv, install, run the benchmark (embedded Milvus Lite):
                           # a first run of about 2 minutes; add --full for the full study
                           # (every workload, N up to 1000) or --help for every option
    python3 dev.py test    # create .venv, install with test extras, run the test suite

Extra arguments after the command are passed through (to pytest for ``test``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("VD_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
EXTRAS = {"main": "bench,llama-index,service", "test": "test,llama-index,compare"}


def ensure_env(extras: str) -> None:
    """Create the virtualenv if needed and install the project with ``extras`` (editable)."""
    if not PYTHON.exists():
        print(f"[dev] creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    # VD_EXTRAS replaces the command's extras; VD_CONSTRAINTS names a pip constraints file
    # (-c), e.g. .ci/floors.txt, the declared dependency floors that .ci/run tests.
    extras = os.environ.get("VD_EXTRAS") or extras
    constraints = os.environ.get("VD_CONSTRAINTS")
    pins = ["-c", str(Path(constraints).resolve())] if constraints else []
    stamp = VENV / f".installed-{extras.replace(',', '-')}"
    inputs = [ROOT / "pyproject.toml", *(Path(c) for c in pins[1:])]
    if stamp.exists() and all(stamp.stat().st_mtime >= p.stat().st_mtime for p in inputs):
        return
    print(f"[dev] installing .[{extras}]", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *pins, "-e", f"{ROOT}[{extras}]"], check=True)
    stamp.touch()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_env(EXTRAS[command])
    if command == "main":
        return run_benchmark([str(PYTHON), "-m", "vd_bench", *rest])
    cmd = [str(PYTHON), "-m", "pytest", *rest]
    return subprocess.run(cmd, cwd=ROOT).returncode


def run_benchmark(cmd: list[str]) -> int:
    """Run the benchmark; on Ctrl-C let it stop its servers itself (it got the SIGINT too)
    instead of killing it a quarter of a second later, as ``subprocess.run`` would. A
    second Ctrl-C kills it (its servers still stop: they watch their parent)."""
    process = subprocess.Popen(cmd, cwd=ROOT)
    try:
        return process.wait()
    except KeyboardInterrupt:
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.kill()
            return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
