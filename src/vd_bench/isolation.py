"""Run a subject in its own process, and in its own virtualenv when its pins conflict.

``llama-index-vector-stores-milvus`` needs ``pymilvus<3`` while ``langchain-milvus``
0.4 needs ``pymilvus>=3``, so an integration we compare against runs in the current
interpreter only if it is importable there; otherwise it gets a virtualenv under
``.venv-bench/<subject>`` with that integration and this package installed. Either
way it runs in a child process (``python -m vd_bench.worker``) that streams progress
and measurements back as lines on stdout.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import venv
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vd_bench.runner import BenchConfig, Measurement
from vd_bench.subjects import SUBJECTS

__all__ = ["MEASUREMENT_PREFIX", "META_PREFIX", "OP_LINE", "python_for", "run_isolated"]

OP_LINE = "@@op"
MEASUREMENT_PREFIX = "@@measurement "
META_PREFIX = "@@meta "
DISTRIBUTION = "vd-integrations"
#: Our extras each subject's environment needs besides the integration itself.
EXTRAS = {"langchain": "bench", "llama_index": "bench,llama-index"}


def _module_of(subject: str) -> str:
    return SUBJECTS[subject].store_path.rpartition(".")[0]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def package_spec() -> str:
    """How to install this package elsewhere: the checkout or URL it was installed from."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").exists() and (root / "src" / "vd_bench").is_dir():
        return str(root)
    try:
        direct = importlib.metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        direct = None
    if direct:
        info = json.loads(direct)
        url = info["url"]
        if url.startswith("file://"):
            return url.removeprefix("file://")
        vcs = info.get("vcs_info")
        if vcs:
            return f"{vcs['vcs']}+{url}@{vcs.get('commit_id', '')}".rstrip("@")
        return url
    return os.environ.get("VD_BENCH_PACKAGE", DISTRIBUTION)


def python_for(subject: str, venvs_dir: Path, log: Callable[[str], None] = print) -> str:
    """An interpreter that can import ``subject``'s store: this one, or a prepared venv."""
    cls = SUBJECTS[subject]
    if _importable(_module_of(subject)):
        return sys.executable
    requirement = getattr(cls, "requirement", None)
    if requirement is None:
        raise RuntimeError(f"{subject} is not importable here and has no requirement to install")
    env_dir = venvs_dir / subject
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    spec = package_spec()
    # A checkout is installed editable, so the child always runs the current worker code.
    editable = ["-e"] if Path(spec).is_dir() else []
    wanted = f"{' '.join(editable)} {spec}[{EXTRAS[cls.integration]}] {requirement}"
    stamp = env_dir / ".bench-installed"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    log(f"preparing an environment for {cls.label} in {env_dir} (once; takes a minute)")
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    target = f"{spec}[{EXTRAS[cls.integration]}]"
    subprocess.run([*pip, *editable, target, requirement], check=True)
    stamp.write_text(wanted)
    return str(python)


def run_isolated(
    subject: str,
    config: BenchConfig,
    *,
    python: str,
    embeddings_base_url: str | None,
    offline: bool,
    log_path: Path,
    on_op: Callable[[], None],
    on_measurement: Callable[[Measurement], None],
) -> tuple[list[Measurement], dict[str, Any]]:
    """Run ``subject`` in a child process; returns its measurements and its package versions."""
    command = [
        python,
        "-m",
        "vd_bench.worker",
        "--subject",
        subject,
        "--config",
        json.dumps(asdict(config)),
        "--offline",
        "1" if offline else "0",
    ]
    if embeddings_base_url:
        command += ["--embeddings-base-url", embeddings_base_url]
    results: list[Measurement] = []
    meta: dict[str, Any] = {}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            bufsize=1,
        )
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            if line == OP_LINE:
                on_op()
            elif line.startswith(MEASUREMENT_PREFIX):
                m = Measurement.from_dict(json.loads(line.removeprefix(MEASUREMENT_PREFIX)))
                results.append(m)
                on_measurement(m)
            elif line.startswith(META_PREFIX):
                meta = json.loads(line.removeprefix(META_PREFIX))
            else:
                log_file.write(line + "\n")
        code = process.wait()
    if code != 0:
        tail = log_path.read_text()[-1500:]
        raise RuntimeError(f"{subject} worker exited with {code}; log {log_path}:\n{tail}")
    return results, meta
