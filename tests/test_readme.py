"""The README's Python blocks run as written, so a stale README fails the suite.

Every fenced block whose info string starts with ``python`` is written to a file in a fresh
temporary directory (the blocks use relative Milvus Lite files such as ``./filters.db``)
and run there in its own interpreter. A block that genuinely cannot run (it would need a
remote service) is fenced ``python no-run``; there are none today and the test below keeps
them rare. Blocks run without OpenAI credentials: they must use fake embeddings.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: Seconds one block may take (a Milvus Lite start-up and a few calls on a busy 2-core box).
BLOCK_TIMEOUT = 240
#: Blocks fenced ``python no-run`` allowed at most.
MAX_NO_RUN = 1

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Block:
    line: int
    info: str
    code: str

    @property
    def runs(self) -> bool:
        return "no-run" not in self.info.split()[1:]


def python_blocks(text: str) -> list[Block]:
    """Every fenced block whose language is ``python``, dedented, with its line number."""
    blocks = []
    for match in _FENCE.finditer(text):
        info = match["info"].strip()
        if not info or info.split()[0].lower() not in ("python", "py"):
            continue
        line = text.count("\n", 0, match.start()) + 2  # the first line of code
        blocks.append(Block(line, info, textwrap.dedent(match["body"])))
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_fence_parser() -> None:
    text = "\n".join(
        [
            "intro",
            "```python",
            "print(1)",
            "```",
            "- item",
            "",
            "  ```python no-run",
            "  print(2)",
            "  ```",
            "```bash",
            "echo 3",
            "```",
        ]
    )
    blocks = python_blocks(text)
    assert [(b.line, b.code, b.runs) for b in blocks] == [
        (3, "print(1)\n", True),
        (8, "print(2)\n", False),
    ]


def test_readme_has_runnable_blocks() -> None:
    assert len(BLOCKS) >= 8
    skipped = [b.line for b in BLOCKS if not b.runs]
    assert len(skipped) <= MAX_NO_RUN, f"too many 'python no-run' blocks (lines {skipped})"
    for block in BLOCKS:
        assert block.code.count("```") == 0, f"unbalanced fence near line {block.line}"


def test_install_section_comes_first_and_names_every_extra() -> None:
    tomllib = pytest.importorskip("tomllib")
    text = README.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings[0] == "Install"
    install = text.split("## Install", 1)[1].split("\n## ", 1)[0]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    missing = [name for name in extras if f"`{name}`" not in install]
    assert not missing, f"extras not described in the README's Install section: {missing}"
    head = "\n".join(text.splitlines()[:30])
    assert "python3 dev.py main" in head and "python3 dev.py test" in head


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for name in list(env):
        # no real service: the blocks must run offline, on fake embeddings
        if name.startswith(("OPENAI_", "AZURE_OPENAI")) or name in ("MILVUS_URI",):
            env.pop(name)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    return env


def _kill_group(pgid: int) -> None:
    """SIGKILL whatever is left of a block's process group (nothing, normally)."""
    if os.name != "posix":
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@pytest.mark.timeout(BLOCK_TIMEOUT + 60)
@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.runs], ids=lambda b: f"README.md:{b.line}"
)
def test_readme_block_runs(block: Block, tmp_path: Path) -> None:
    script = tmp_path / f"readme_line_{block.line}.py"
    script.write_text(block.code, encoding="utf-8")
    # its own process group: a Milvus Lite server the block started dies with it
    proc = subprocess.Popen(
        [sys.executable, script.name],
        cwd=tmp_path,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        stdout, stderr = proc.communicate()
        pytest.fail(
            f"README.md block at line {block.line} ran over {BLOCK_TIMEOUT} s\n"
            f"--- stdout ---\n{stdout[-3000:]}\n--- stderr ---\n{stderr[-6000:]}"
        )
    finally:
        _kill_group(proc.pid)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    if result.returncode != 0:
        pytest.fail(
            f"README.md block at line {block.line} exited with {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
