"""The benchmark command: measurements, checks, reports, plots, and the comparison path."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import vd_bench
from tests.bench_measurements import measurement
from vd_bench import BenchConfig, BenchResults, arun_benchmark, run_benchmark
from vd_bench import bench as bench_module
from vd_bench.__main__ import config_from, parse_args
from vd_bench.__main__ import main as bench_main
from vd_bench.bench import MissingDependencyError, check_dependencies, subjects_for
from vd_bench.estimate import estimate_seconds
from vd_bench.isolation import install_args, spec_from_direct_url
from vd_bench.runner import FULL, MODES, QUICK, operations_planned, percentile
from vd_bench.subjects import ALL_WORKLOADS, WORKLOADS, population

FAST = {"latency": 0.01, "dim": 32, "population": 40}


# ----- pure parts --------------------------------------------------------------------------------


def test_percentile_interpolates():
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(map(float, range(101))), 99) == 99.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": ()}, "positive"),
        ({"n": (0,)}, "positive"),
        ({"workloads": ("add", "fly")}, "unknown workloads"),
        ({"modes": ("sometimes",)}, "unknown modes"),
        ({"integrations": ("haystack",)}, "unknown integrations"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BenchConfig(**kwargs)


def test_the_default_is_a_first_run_and_full_is_one_flag_away():
    quick = BenchConfig()
    assert (quick.n, quick.workloads, quick.population) == (
        QUICK["n"],
        QUICK["workloads"],
        QUICK["population"],
    )
    assert quick.integrations == ("langchain", "llama_index")
    assert quick.modes == ("sync", "async")
    assert not quick.is_full
    full = BenchConfig.full()
    assert (full.n, full.workloads, full.population) == (FULL["n"], ALL_WORKLOADS, 1000)
    assert full.is_full
    # the service workload: in the full study (2,000 searches then 500 adds), not the default
    assert "service" not in quick.workloads and "service" in full.workloads
    assert (full.service_searches, full.service_adds, full.service_clients) == (2000, 500, 50)
    assert quick.service_searches < full.service_searches
    # the budget: a first run within about 3 minutes; the full study far longer
    assert estimate_seconds(quick) <= 150
    assert estimate_seconds(full) > 15 * 60
    # the command line: presets, with explicit options on top
    assert config_from(parse_args([])) == BenchConfig()
    assert config_from(parse_args(["--full"])) == BenchConfig.full()
    assert config_from(parse_args(["--full", "-n", "10"])) == BenchConfig.full(n=(10,))
    assert config_from(parse_args(["--workloads", "mmr"])).n == QUICK["n"]
    served = config_from(parse_args(["--workloads", "service", "--service-clients", "7"]))
    assert served.workloads == ("service",) and served.service_clients == 7
    assert served.service_searches == QUICK["service_searches"]
    assert config_from(parse_args(["--full", "--service-adds", "3"])).service_adds == 3
    assert not config_from(parse_args(["--no-floor"])).floor


def test_the_service_counts_once_per_langchain_store_and_mode():
    config = BenchConfig(
        n=(10,),
        workloads=("search", "service"),
        modes=("async",),
        compare=True,
        service_searches=20,
        service_adds=5,
    )
    assert config.operations == ("search",)
    # 4 stores x 10 searches, and 25 requests for each of the two LangChain stores
    assert operations_planned(config, subjects_for(config)) == 4 * 10 + 2 * 25
    only = BenchConfig(workloads=("service",), service_searches=20, service_adds=5)
    assert estimate_seconds(only) < estimate_seconds(BenchConfig(workloads=("service",)))
    with pytest.raises(ValueError, match="service_clients"):
        BenchConfig(service_clients=0)


def test_help_shows_defaults_estimates_and_that_compare_installs(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: add search delete" in text
    assert "default: langchain llama_index" in text
    assert "default: sync async" in text
    assert "--full" in text and "min" in text
    for choice in (*WORKLOADS, "langchain about", "llama_index about", "sync about"):
        assert choice in text
    assert "INSTALLS" in text and "isolated virtualenvs" in text


def test_missing_optional_packages_fail_before_any_measurement(monkeypatch, capsys):
    missing = {"matplotlib", "llama_index.core"}
    monkeypatch.setattr(bench_module, "_installed", lambda module: module not in missing)

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured despite missing packages")

    monkeypatch.setattr(vd_bench.__main__, "run_benchmark", no_measuring)
    assert bench_main(["--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "matplotlib" in err and "llama_index.core" in err
    assert 'pip install "vd-integrations[bench,llama-index]"' in err
    # what the chosen run does not need is not asked for
    check_dependencies(BenchConfig(integrations=("langchain",)), plots=False)
    with pytest.raises(MissingDependencyError, match=r"vd-integrations\[bench\]"):
        check_dependencies(BenchConfig(integrations=("langchain",)), plots=True)
    with pytest.raises(MissingDependencyError):
        run_benchmark(BenchConfig(integrations=("llama_index",)))
    # the service workload's web stack, only when a LangChain store is served
    missing |= {"starlette", "uvicorn"}
    service = BenchConfig(integrations=("langchain",), workloads=("service",))
    with pytest.raises(MissingDependencyError, match=r"vd-integrations\[bench,service\]") as info:
        check_dependencies(service, plots=False)
    assert "starlette" in str(info.value) and "uvicorn" in str(info.value)
    check_dependencies(BenchConfig(integrations=("langchain",)), plots=False)


def test_subjects_in_run_order():
    assert subjects_for(BenchConfig()) == ["langchain_vd", "llama_index_vd"]
    assert subjects_for(BenchConfig(compare=True, integrations=("llama_index",))) == [
        "llama_index_vd",
        "llama_index_milvus",
    ]


def test_populations_cover_every_operation():
    assert population("add", 1000) == 0
    assert population("search", 10) == 1000
    assert population("delete", 5000) == 5000  # every delete hits a document


def synthetic() -> BenchResults:
    rows = [
        measurement("langchain_vd", "add", 100, "sync", 10.0, embedding_requests=100),
        measurement("langchain_vd", "add", 100, "async", 0.5, embedding_requests=2),
        measurement("langchain_milvus", "add", 100, "sync", 12.0),
        measurement(
            "langchain_milvus",
            "add",
            100,
            "async",
            None,
            failures=3,
            error="MilvusException: collection not found",
        ),
        measurement("langchain_milvus", "add", 100, "async", 2.0, precreated=True),
    ]
    return BenchResults(rows, {"milvus": "test", "embeddings": "fake"})


def test_speedups_and_ratios_use_the_precreated_rerun():
    results = synthetic()
    assert results.speedup("langchain_vd", "add", 100) == pytest.approx(20.0)
    assert results.speedup("langchain_milvus", "add", 100) == pytest.approx(6.0)
    assert results.ratio_vs_anchor("langchain_vd", "add", 100, "async") == pytest.approx(4.0)
    assert results.ratio_vs_anchor("langchain_vd", "add", 100, "sync") == pytest.approx(1.2)
    table = results.table()
    assert "20.0x" in table and "failed on a fresh collection" in table
    comparison = results.comparison_table()
    assert "4.00x" in comparison and "pre-created" in comparison


def test_tables_report_the_floor_and_the_service(tmp_path):
    floors = {"floor_embedding_s": 0.1, "floor_server_s": 0.05, "floor_round_trips": 1}
    rows = [
        measurement("langchain_vd", "search", 100, "sync", 12.0, floor_s=0.16, **floors),
        measurement("langchain_vd", "search", 100, "async", 0.6, floor_s=0.15, **floors),
        measurement("langchain_vd", "delete", 100, "async", 0.3, floor_error="boom"),
        measurement(
            "langchain_vd",
            "service search",
            40,
            "async",
            2.0,
            clients=4,
            floor_s=1.0,
            ceiling_s=1.6,
            **floors,
        ),
        measurement(
            "langchain_milvus",
            "service search",
            40,
            "async",
            4.0,
            clients=4,
            floor_s=1.0,
            ceiling_error="1 failed: boom",
            **floors,
        ),
    ]
    results = BenchResults(rows, {"milvus": "test", "embeddings": "fake"})
    # the lower of a row's two floor samples; each mode's time over it
    assert results.floor("langchain_vd", "search", 100).floor_s == 0.15
    assert results.floor_ratio("langchain_vd", "search", 100, "async") == pytest.approx(4.0)
    assert results.floor_ratio("langchain_vd", "search", 100, "sync") == pytest.approx(80.0)
    assert results.floor("langchain_vd", "delete", 100) is None
    table = results.table()
    assert "floor s (embedding + server)" in table and "0.15 (0.10 + 0.05)" in table
    assert "| 80.0x | 4.0x |" in table and "floor not measured: boom" in table
    assert "service" not in table  # the service has its own table
    service = results.service_table()
    lines = [line for line in service.splitlines() if line.startswith("| langchain")]
    assert len(lines) == 2 and all("| search | async | 4 | 40 |" in line for line in lines)
    assert "| 20 |" in lines[0] and "| 40 |" in lines[0]  # req/s, floor req/s
    assert "150 (100 + 50)" in lines[0] and "2.0x" in lines[0]
    assert "| 25 | 1.25x |" in lines[0]  # ceiling req/s, s/ceiling
    assert "| - | - | ceiling not measured: 1 failed: boom |" in lines[1]
    summary = results.summary()
    assert table in summary and service in summary
    assert "| LangChain | service search | 40 | async | 2.00 | 4.00 | 2.00x |" in summary
    # plots show the workloads of N operations; a service-only run writes tables only
    paths = results.save(tmp_path / "both")
    assert paths["time"].exists()
    service_only = BenchResults([m for m in rows if m.workload.startswith("service")])
    paths = service_only.save(tmp_path / "service")
    assert set(paths) == {"json", "table"}
    assert BenchResults.load(paths["json"]).measurements == service_only.measurements


def test_save_writes_json_table_and_plots(tmp_path):
    results = synthetic()
    paths = results.save(tmp_path)
    assert set(paths) >= {"json", "table", "time", "speedup", "latency", "throughput"}
    for key in ("time", "speedup", "latency", "throughput"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = BenchResults.load(paths["json"])
    assert loaded.measurements == results.measurements
    assert json.loads(paths["json"].read_text())["meta"]["milvus"] == "test"


def _bars(fig) -> int:
    from matplotlib.patches import Rectangle

    return sum(
        isinstance(patch, Rectangle) and patch.get_height() != 0
        for ax in fig.axes
        for patch in ax.patches
    )


def test_plots_put_legends_outside_draw_a_reference_and_bars_for_one_n():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.colors import rgb_to_hsv, to_rgb

    from vd_bench import plots

    rows = [
        measurement(subject, workload, n, mode, seconds)
        for subject in ("langchain_vd", "langchain_milvus")
        for workload in ("add", "search")
        for n in (10, 100)
        for mode, seconds in (("sync", n * 0.1), ("async", 0.2 if subject == "langchain_vd" else 1))
    ]
    two_ns = BenchResults(rows)
    one_n = BenchResults([m for m in rows if m.n == 100])
    for results in (two_ns, one_n):
        for name, make in plots.FIGURES.items():
            fig = make(results)
            fig.canvas.draw()
            renderer = fig.canvas.get_renderer()
            legend = fig.legends[0].get_window_extent(renderer)
            for ax in fig.axes:  # the legend covers no axes
                assert legend.x0 >= ax.get_window_extent(renderer).x1, name
                assert ax.get_legend() is None
            titles = [ax.title.get_window_extent(renderer) for ax in fig.axes]
            suptitle = fig._suptitle.get_window_extent(renderer)
            assert all(not suptitle.overlaps(t) for t in titles), name
            if name == "speedup":
                assert any(
                    line.get_label().startswith("1x") and set(line.get_ydata()) == {1.0}
                    for ax in fig.axes
                    for line in ax.get_lines()
                )
            matplotlib.pyplot.close(fig)
    # one N: the speed-up and throughput charts are bars, not lone dots
    assert _bars(plots.speedup_figure(one_n)) == 4
    assert _bars(plots.throughput_figure(one_n)) == 8
    assert _bars(plots.speedup_figure(two_ns)) == 0
    # ours and theirs share a workload's hue, ours darker
    ours, theirs = (rgb_to_hsv(to_rgb(plots._colour(matplotlib.pyplot, "add", a))) for a in (0, 1))
    assert abs(ours[0] - theirs[0]) < 0.05 and ours[2] < theirs[2]
    matplotlib.pyplot.close("all")


def test_plots_and_report_do_not_import_each_other():
    plots_source = Path(vd_bench.__file__).with_name("plots.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(plots_source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not any(name.startswith("vd_bench.report") for name in imported)


# ----- isolation: how this package is installed next to a compared integration ------------------

SHA = "0123456789abcdef0123456789abcdef01234567"
GIT = f"git+https://github.com/vd-integrations/vd-integrations@{SHA}"


def test_install_args_for_a_vcs_requirement_use_the_pep_508_form():
    args = install_args(GIT, "bench,llama-index")
    assert args == [f"vd-integrations[bench,llama-index] @ {GIT}"]
    requirement = Requirement(args[0])  # what pip parses: a name, extras and the URL
    assert requirement.name == "vd-integrations"
    assert requirement.extras == {"bench", "llama-index"}
    assert requirement.url == GIT
    with pytest.raises(ValueError):  # the form pip could not check out
        Requirement(f"{GIT}[bench]")


def test_install_args_for_a_local_checkout_archive_and_names(tmp_path):
    checkout = tmp_path / "my checkout"
    checkout.mkdir()
    assert install_args(str(checkout), "bench") == ["-e", f"{checkout}[bench]"]
    wheel = tmp_path / "vd_integrations-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    (arg,) = install_args(str(wheel), "bench")
    assert Requirement(arg).url == wheel.as_uri() and Requirement(arg).extras == {"bench"}
    assert install_args("vd-integrations", "bench") == ["vd-integrations[bench]"]
    assert install_args("vd-integrations[notebook]==0.1.0", "bench,llama-index") == [
        "vd-integrations[bench,llama-index,notebook]==0.1.0"
    ]
    assert install_args(f"vd-integrations @ {GIT}", "bench") == [f"vd-integrations[bench] @ {GIT}"]
    url = "https://example.org/vd_integrations-0.1.0.tar.gz"
    assert install_args(url, "bench") == [f"vd-integrations[bench] @ {url}"]
    with pytest.raises(ValueError, match="VD_BENCH_PACKAGE"):
        install_args(str(tmp_path / "missing dir" / "x"), "bench")


def test_spec_from_direct_url_as_pip_records_it():
    colab = {  # pip install "vd-integrations[...] @ git+https://github.com/...@main"
        "url": "https://github.com/vd-integrations/vd-integrations",
        "vcs_info": {"vcs": "git", "requested_revision": "main", "commit_id": SHA},
    }
    assert spec_from_direct_url(colab) == GIT  # pinned to the installed commit
    sub = {**colab, "subdirectory": "pkg"}
    assert spec_from_direct_url(sub) == f"{GIT}#subdirectory=pkg"
    local = {"url": "file:///home/me/my%20checkout", "dir_info": {"editable": True}}
    assert spec_from_direct_url(local) == "/home/me/my checkout"
    archive = {"url": "https://example.org/x.whl", "archive_info": {}}
    assert spec_from_direct_url(archive) == "https://example.org/x.whl"


def test_python_for_installs_a_vcs_install_with_pep_508_extras(tmp_path, monkeypatch):
    from vd_bench import isolation

    calls = []
    monkeypatch.setattr(isolation, "_importable", lambda module: False)
    monkeypatch.setattr(isolation, "package_spec", lambda: GIT)

    class FakeBuilder:
        def __init__(self, **kwargs):
            pass

        def create(self, path):
            Path(path, "bin").mkdir(parents=True)
            Path(path, "bin", "python").touch()

    monkeypatch.setattr(isolation.venv, "EnvBuilder", FakeBuilder)
    monkeypatch.setattr(isolation.subprocess, "run", lambda cmd, check: calls.append(cmd))
    python = isolation.python_for("llama_index_milvus", tmp_path, log=lambda text: None)
    assert python == str(tmp_path / "llama_index_milvus" / "bin" / "python")
    (cmd,) = calls
    assert cmd[-2:] == [
        f"vd-integrations[bench,llama-index] @ {GIT}",
        "llama-index-vector-stores-milvus",
    ]
    isolation.python_for("llama_index_milvus", tmp_path, log=lambda text: None)
    assert len(calls) == 1  # prepared once


# ----- servers stop with their parent -------------------------------------------------------------

PARENT = """
import sys, time
from vd_integrations.testing.embedding_server import embedding_endpoint
from vd_integrations.testing.lite_server import MilvusLiteServer

with embedding_endpoint(latency=0.0, dim=8, offline=True) as endpoint:
    pids = [endpoint.server._proc.pid]
    ports = [int(endpoint.base_url.rsplit(":", 1)[1].split("/")[0])]
    if sys.argv[1] == "lite":
        lite = MilvusLiteServer().start()
        pids.append(lite._proc.pid)
        ports.append(lite.port)
    print(" ".join(map(str, pids)), " ".join(map(str, ports)), flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return not sys.platform.startswith("linux")


def _group_alive(pgid: int) -> bool:
    if not Path("/proc").is_dir():
        return _alive(pgid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.skipif(os.name != "posix", reason="process groups and SIGKILL")
@pytest.mark.parametrize(
    ("servers", "how"),
    [("embedding", "sigkill"), ("embedding", "sigterm-group"), ("lite", "sigkill")],
)
def test_servers_stop_when_their_parent_dies(servers, how, tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, servers],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=tmp_path,
    )
    try:
        line = parent.stdout.readline()
        assert line, "the parent did not start its servers"
        numbers = [int(x) for x in line.split()]
        pids, ports = numbers[: len(numbers) // 2], numbers[len(numbers) // 2 :]
        assert all(_alive(pid) for pid in pids) and all(_listening(p) for p in ports)
        if how == "sigkill":
            parent.kill()
        else:  # what `timeout` or a job control stop does: SIGTERM to the parent's group
            os.killpg(parent.pid, signal.SIGTERM)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30  # generous; it takes about a second
        while time.monotonic() < deadline and (
            any(_group_alive(pid) for pid in pids) or any(_listening(p) for p in ports)
        ):
            time.sleep(0.1)
        assert not any(_group_alive(pid) for pid in pids), "a server outlived its parent"
        assert not any(_listening(p) for p in ports)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


SERVICE_PARENT = """
import json, sys, time
from dataclasses import asdict
from pathlib import Path
from vd_bench.runner import BenchConfig
from vd_bench.service import _Child
from vd_bench.service_app import LISTENING_PREFIX, META_PREFIX
from vd_integrations.testing.embedding_server import embedding_endpoint

uri, out = sys.argv[1], sys.argv[2]
config = BenchConfig(uri=uri, out_dir=out, latency=0.0, dim=8, population=5, floor=False)
with embedding_endpoint(latency=0.0, dim=8, offline=True) as endpoint:
    child = _Child(
        [sys.executable, "-m", "vd_bench.service_app", "--subject", "langchain_vd",
         "--config", json.dumps(asdict(config)), "--mode", "async", "--exit-with-parent",
         "--embeddings-base-url", endpoint.base_url],
        Path(out) / "service.log",
    )
    child.wait_for(META_PREFIX, 120)
    port = int(child.wait_for(LISTENING_PREFIX, 120))
    print(child.process.pid, port, flush=True)
    time.sleep(600)
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_the_service_app_stops_when_the_benchmark_is_killed(milvus_uri, tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", SERVICE_PARENT, milvus_uri, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=tmp_path,
    )
    try:
        line = parent.stdout.readline()
        assert line, "the parent did not start the service"
        pid, port = map(int, line.split())
        assert _alive(pid) and _listening(port)
        parent.kill()
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30  # it shuts down cleanly within a second or two
        while time.monotonic() < deadline and (_alive(pid) or _listening(port)):
            time.sleep(0.1)
        assert not _alive(pid), "the service outlived the benchmark"
        assert not _listening(port)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_loop_runner_refuses_a_running_loop_without_nest_asyncio():
    # In a fresh interpreter: nest_asyncio patches the loop class for the whole process once
    # any test applies it, after which every loop counts as patched.
    code = """
import asyncio
from vd_bench.runner import LoopRunner

async def inside():
    async def nothing():
        return 1
    try:
        LoopRunner().run(nothing())
    except RuntimeError as exc:
        assert "nest_asyncio" in str(exc), exc
        print("refused")

with LoopRunner() as outer:
    outer.run(inside())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused"


def test_compared_integrations_get_an_interpreter_that_can_import_them(tmp_path):
    import sys

    from vd_bench.isolation import package_spec, python_for

    # langchain-milvus is installed in the test environment: no virtualenv is needed
    assert python_for("langchain_milvus", tmp_path) == sys.executable
    assert not list(tmp_path.iterdir())
    # from a checkout, the spec is the checkout (installed editable in other venvs)
    assert (Path(package_spec()) / "pyproject.toml").exists()


# ----- real runs ---------------------------------------------------------------------------------


def test_every_workload_runs_and_checks_its_result(milvus_uri, tmp_path):
    config = BenchConfig(n=(4,), workloads=WORKLOADS, uri=milvus_uri, out_dir=str(tmp_path), **FAST)
    seen = []
    results = run_benchmark(config, progress=False, on_measurement=seen.append)
    assert len(results.measurements) == 2 * len(WORKLOADS) * 2 == len(seen)
    for m in results.measurements:
        assert m.ok, (m.subject, m.workload, m.mode, m.error)
        assert m.seconds > 0 and m.p99_ms >= m.p50_ms > 0
        assert m.rows_after == m.rows_expected
        # the physical floor, measured next to every run: embedding + one server request
        assert m.floor_error is None, (m.subject, m.workload, m.floor_error)
        assert m.floor_round_trips == (0 if m.workload == "delete" else 1)
        assert m.floor_server_s > 0 and m.floor_s == m.floor_embedding_s + m.floor_server_s
        assert (m.floor_embedding_s > 0) == (m.workload != "delete")
        assert results.floor_ratio(m.subject, m.workload, m.n, m.mode) > 0
    adds = [m for m in results.measurements if m.workload in ("add", "search")]
    assert all(m.embedding_requests and m.embedding_requests >= 1 for m in adds)
    deletes = [m for m in results.measurements if m.workload == "delete"]
    assert all(m.embedding_requests == 0 for m in deletes)
    assert results.meta["embeddings"].startswith("offline")
    assert "langchain_vd" in results.meta["versions"]


def test_compare_runs_the_replaced_integration_in_its_own_process(milvus_uri, tmp_path):
    config = BenchConfig(
        n=(3,),
        workloads=("add", "search"),
        integrations=("langchain",),
        compare=True,
        uri=milvus_uri,
        out_dir=str(tmp_path),
        **FAST,
    )
    results = run_benchmark(config, progress=False)
    theirs = [m for m in results.measurements if m.subject == "langchain_milvus"]
    assert {(m.workload, m.mode) for m in theirs} == {
        ("add", "sync"),
        ("add", "async"),
        ("search", "sync"),
        ("search", "async"),
    }
    # Whatever failed on a fresh collection was measured again on a pre-created one.
    for m in theirs:
        if not m.ok and not m.precreated:
            assert results.get(m.subject, m.workload, m.n, m.mode).precreated
    assert results.ratio_vs_anchor("langchain_vd", "search", 3, "sync") is not None
    assert "langchain-milvus" in results.meta["versions"]["langchain_milvus"]
    assert (tmp_path / "logs" / "langchain_milvus.log").exists()


def test_service_serves_each_langchain_store_and_stops_its_servers(
    milvus_uri, tmp_path, monkeypatch
):
    from vd_bench import service

    started: list[tuple[int, int]] = []
    real = service.run_service

    def recording(*args, **kwargs):
        return real(*args, on_started=lambda pid, port: started.append((pid, port)), **kwargs)

    monkeypatch.setattr(service, "run_service", recording)
    config = BenchConfig(
        workloads=("service",),
        compare=True,  # langchain-milvus is importable here: its app runs on this interpreter
        uri=milvus_uri,
        out_dir=str(tmp_path),
        service_clients=3,
        service_searches=12,
        service_adds=4,
        **FAST,
    )
    results = run_benchmark(config, progress=False)
    # LangChain stores only (the LlamaIndex ones are skipped), per mode: searches then adds
    assert [(m.subject, m.workload, m.mode) for m in results.measurements] == [
        (subject, f"service {phase}", mode)
        for subject in ("langchain_vd", "langchain_milvus")
        for mode in ("sync", "async")
        for phase in ("search", "add")
    ]
    for m in results.measurements:
        assert m.ok, (m.subject, m.workload, m.mode, m.error)
        assert m.n == (12 if m.workload == "service search" else 4) and m.clients == 3
        assert m.seconds > 0 and m.ops_per_s > 0 and m.p99_ms >= m.p50_ms > 0
        # every text embedded once; merged into fewer requests or not
        assert m.embedding_inputs == m.n and 1 <= m.embedding_requests <= m.n
        assert m.floor_error is None and m.floor_s > 0 and m.floor_round_trips == 1
        # the same requests against an endpoint that only sleeps the floor latency: each
        # client sends its share one after another, so no faster than their sleeps allow
        latency = m.floor_embedding_s + m.floor_server_s
        assert m.ceiling_error is None and m.ceiling_s >= m.n * latency / m.clients
        if m.workload == "service add":  # the population, the warm-up add, the adds
            assert m.rows_after == m.rows_expected == 40 + 1 + 4
    langchain_milvus = [m for m in results.measurements if m.subject == "langchain_milvus"]
    assert all(m.embedding_requests == m.n for m in langchain_milvus)  # one per call
    assert len(results.service_table().splitlines()) == 2 + 8
    assert "service search" in results.comparison_table()
    assert "langchain-milvus" in results.meta["versions"]["langchain_milvus"]
    # one app per store and mode, each gone afterwards
    assert len(started) == 4 and len({port for _, port in started}) == 4
    assert not any(_alive(pid) or _listening(port) for pid, port in started)
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == sorted(
        f"{s}_service_{mode}.log" for s in ("langchain_vd", "langchain_milvus") for mode in MODES
    )


def test_command_line_writes_results(milvus_uri, tmp_path, capsys):
    code = bench_main(
        [
            "-n",
            "3",
            "--workloads",
            "search",
            "--integrations",
            "llama_index",
            "--uri",
            milvus_uri,
            "--out",
            str(tmp_path),
            "--no-progress",
            "--latency",
            "0.01",
            "--dim",
            "32",
            "--population",
            "40",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "llama_index_vd.MilvusVectorStore | search | 3" in out
    assert (tmp_path / "results.json").exists() and (tmp_path / "speedup.png").exists()


def test_runs_inside_a_running_event_loop(milvus_uri, tmp_path):
    """As in a notebook cell: ``await arun_benchmark(...)``, or the sync call, which then
    runs in a helper thread, with no nest_asyncio."""
    config = BenchConfig(
        n=(2,),
        workloads=("search",),
        integrations=("langchain",),
        uri=milvus_uri,
        out_dir=str(tmp_path),
        embeddings="vd",
        **FAST,
    )

    async def cell():
        awaited = await arun_benchmark(config, progress=False)
        blocking = run_benchmark(config, progress=False)
        return awaited, blocking

    for results in asyncio.run(cell()):
        assert [m.ok for m in results.measurements] == [True, True]


def test_the_service_app_answers_without_nagle_delays():
    """Connections uvicorn accepts on the app's socket have TCP_NODELAY: asyncio sets it
    only when the socket names IPPROTO_TCP, and without it a response's body waits for the
    client's delayed acknowledgement of its headers (up to 40 ms a request)."""
    import socket

    from vd_bench.service_app import listening_socket

    accepted: list[int] = []

    async def main() -> None:
        sock = listening_socket()
        host, port = sock.getsockname()

        def protocol() -> asyncio.Protocol:
            class Record(asyncio.Protocol):
                def connection_made(self, transport: asyncio.BaseTransport) -> None:
                    raw = transport.get_extra_info("socket")
                    accepted.append(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                    transport.close()

            return Record()

        server = await asyncio.get_running_loop().create_server(protocol, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(host, port)
            for _ in range(100):
                if accepted:
                    break
                await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(main())
    assert accepted and accepted[0] != 0
