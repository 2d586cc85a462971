"""Child process entry point: ``python -m vd_bench.worker --subject NAME --config JSON``.

Runs one subject and streams progress and measurements as lines on stdout (see
:mod:`vd_bench.isolation`); everything else the libraries print goes to the log. With
``--exit-with-parent`` it exits as soon as the benchmark that started it is gone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from vd_bench.isolation import MEASUREMENT_PREFIX, META_PREFIX, OP_LINE
from vd_bench.meta import package_versions
from vd_bench.runner import BenchConfig, endpoint_for, run_subject
from vd_bench.subjects import SUBJECTS, make_subject


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subject", required=True, choices=sorted(SUBJECTS))
    parser.add_argument("--config", required=True, help="BenchConfig as JSON")
    parser.add_argument("--embeddings-base-url", default=None)
    parser.add_argument("--offline", default="1")
    parser.add_argument(
        "--exit-with-parent", action="store_true", help="exit when stdin closes (the parent's pipe)"
    )
    args = parser.parse_args(argv)
    if args.exit_with_parent:
        from vd_integrations.testing.lite_server import exit_with_parent

        exit_with_parent(lambda: os._exit(1), grace=0.0)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)

    config = BenchConfig(**json.loads(args.config))
    endpoint = endpoint_for(args.subject, config, args.embeddings_base_url, None)
    subject = make_subject(args.subject, endpoint, config.population)

    def emit(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    emit(META_PREFIX + json.dumps(package_versions()))
    run_subject(
        subject,
        config,
        offline=args.offline == "1",
        on_op=lambda: emit(OP_LINE),
        on_measurement=lambda m: emit(MEASUREMENT_PREFIX + json.dumps(m.to_dict())),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
