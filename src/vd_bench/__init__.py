"""The sync-vs-async benchmark: the README's main job, and the notebooks' source of numbers.

    python -m vd_bench                 # a first run: a couple of minutes
    python -m vd_bench --full          # the full study: every workload, N up to 1000
    python -m vd_bench -n 10 100 1000 [--uri URI] [--compare] [--help]

or from Python::

    from vd_bench import BenchConfig, run_benchmark
    results = run_benchmark(BenchConfig())          # or BenchConfig.full()
    print(results.table()); results.save("bench_results")

and in a notebook, ``results = await arun_benchmark(BenchConfig())``.
"""

from vd_bench.bench import MissingDependencyError, arun_benchmark, run_benchmark
from vd_bench.report import BenchResults
from vd_bench.runner import BenchConfig, Measurement
from vd_integrations import __version__

__all__ = [
    "BenchConfig",
    "BenchResults",
    "Measurement",
    "MissingDependencyError",
    "__version__",
    "arun_benchmark",
    "run_benchmark",
]
