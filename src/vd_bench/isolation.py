"""Run a subject in its own process, and in its own virtualenv when its pins conflict.

``llama-index-vector-stores-milvus`` needs ``pymilvus<3`` while ``langchain-milvus``
0.4 needs ``pymilvus>=3``, so an integration we compare against runs in the current
interpreter only if it is importable there; otherwise it gets a virtualenv under
``.venv-bench/<subject>`` with that integration and this package installed. Either
way it runs in a child process (``python -m vd_bench.worker``) that streams progress
and measurements back as lines on stdout, and exits when this process does (it watches
a pipe on its stdin).

This package is installed into that virtualenv the way it was installed here: a
checkout editable, a VCS URL (``pip install "vd-integrations @ git+https://...@<sha>"``,
as the notebooks' Colab cell does) or an archive by its URL, otherwise by name. The
extras go on the requirement in PEP 508 form (``vd-integrations[bench] @ git+...``): pip
cannot check out ``git+...@<sha>[bench]``.
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
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from packaging.requirements import InvalidRequirement, Requirement

from vd_bench.runner import BenchConfig, Measurement
from vd_bench.subjects import SUBJECTS

__all__ = [
    "MEASUREMENT_PREFIX",
    "META_PREFIX",
    "OP_LINE",
    "install_args",
    "package_spec",
    "python_for",
    "run_isolated",
]

OP_LINE = "@@op"
MEASUREMENT_PREFIX = "@@measurement "
META_PREFIX = "@@meta "
DISTRIBUTION = "vd-integrations"
#: Our extras each subject's environment needs besides the integration itself (LangChain
#: stores also serve the service workload's web app).
EXTRAS = {"langchain": "bench,service", "llama_index": "bench,llama-index"}


def _module_of(subject: str) -> str:
    return SUBJECTS[subject].store_path.rpartition(".")[0]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def package_spec() -> str:
    """How to install this package elsewhere: the checkout, archive, URL or VCS URL it was
    installed from (pinned to the installed commit), else ``$VD_BENCH_PACKAGE`` or its name.
    """
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").exists() and (root / "src" / "vd_bench").is_dir():
        return str(root)
    try:
        direct = importlib.metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        direct = None
    if direct:
        return spec_from_direct_url(json.loads(direct))
    return os.environ.get("VD_BENCH_PACKAGE", DISTRIBUTION)


def spec_from_direct_url(info: dict[str, Any]) -> str:
    """The source in a ``direct_url.json`` (PEP 610): a local path, a URL or a VCS URL."""
    url = info["url"]
    vcs = info.get("vcs_info")
    if vcs:
        revision = vcs.get("commit_id") or vcs.get("requested_revision")
        spec = f"{vcs['vcs']}+{url}" + (f"@{revision}" if revision else "")
        if info.get("subdirectory"):
            spec += f"#subdirectory={info['subdirectory']}"
        return spec
    if url.startswith("file:"):
        return url2pathname(unquote(urlparse(url).path))
    return url


def _is_url(spec: str) -> bool:
    scheme = spec.partition("://")[0]
    return "://" in spec and " " not in scheme and "@" not in scheme


def install_args(spec: str, extras: str) -> list[str]:
    """``pip install`` arguments for ``spec`` with ``extras`` (comma-separated).

    - a directory (a checkout): ``-e DIR[extras]``, so the child runs the current code;
    - an archive file, a URL or a VCS URL (``git+https://...@<sha>``): the PEP 508 direct
      reference ``vd-integrations[extras] @ URL``;
    - a requirement (``vd-integrations``, ``vd-integrations==0.1``, ``name[x] @ URL``):
      itself, with ``extras`` added to its own.
    """
    wanted = {e.strip() for e in extras.split(",") if e.strip()}
    listed = ",".join(sorted(wanted))
    if not _is_url(spec):
        path = Path(spec).expanduser()
        if path.is_dir():
            return ["-e", f"{path.resolve()}[{listed}]"]
        if path.is_file():
            return [f"{DISTRIBUTION}[{listed}] @ {path.resolve().as_uri()}"]
    if _is_url(spec):
        return [f"{DISTRIBUTION}[{listed}] @ {spec}"]
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as exc:
        raise ValueError(
            f"cannot install {spec!r} in a benchmark environment: not a directory, file, "
            f"URL or requirement ({exc}); set VD_BENCH_PACKAGE to one"
        ) from None
    # spelled out rather than str(requirement), whose spacing differs between packaging
    # releases ("name[x]@ url" in 25.0, "name[x] @ url" in 26)
    text = f"{requirement.name}[{','.join(sorted(requirement.extras | wanted))}]"
    text += f" @ {requirement.url}" if requirement.url else str(requirement.specifier)
    if requirement.marker is not None:
        text += f"; {requirement.marker}"
    return [text]


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
    args = [*install_args(package_spec(), EXTRAS[cls.integration]), requirement]
    wanted = json.dumps(args)
    stamp = env_dir / ".bench-installed"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    log(
        f"installing {cls.label} and this package into an isolated environment, {env_dir} "
        "(once; takes a minute or two)"
    )
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *args], check=True)
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
        "--exit-with-parent",
    ]
    if embeddings_base_url:
        command += ["--embeddings-base-url", embeddings_base_url]
    results: list[Measurement] = []
    meta: dict[str, Any] = {}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log_file:
        # stdin is the worker's lifeline: it exits when this process does, however.
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            bufsize=1,
        )
        assert process.stdout is not None
        try:
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
        except BaseException:  # Ctrl-C or a failing callback: do not leave the worker running
            process.kill()
            process.wait()
            raise
        finally:
            assert process.stdin is not None
            process.stdin.close()
        code = process.wait()
    if code != 0:
        tail = log_path.read_text()[-1500:]
        raise RuntimeError(f"{subject} worker exited with {code}; log {log_path}:\n{tail}")
    return results, meta
