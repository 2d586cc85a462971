"""The sync-vs-async benchmark: the README's main job, and the notebooks' source of numbers.

    python -m vd_bench [--n 10 100 1000] [--uri URI] [--compare]

or from Python::

    from vd_bench import BenchConfig, run_benchmark
    results = run_benchmark(BenchConfig(n=(10, 100)))
    print(results.table()); results.save("bench_results")
"""

from vd_bench.bench import run_benchmark
from vd_bench.report import BenchResults
from vd_bench.runner import BenchConfig, Measurement
from vd_integrations import __version__

__all__ = ["BenchConfig", "BenchResults", "Measurement", "__version__", "run_benchmark"]
