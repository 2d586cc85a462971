"""One measurement of the benchmark: a (subject, workload, n, mode) run in one round.

:class:`Measurement` is what the runner fills, the worker streams back, results.json holds
(one per round, raw) and :class:`vd_bench.report.BenchResults` reads; :func:`percentile`
is the latency summary it uses. Both are importable from :mod:`vd_bench.runner` too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["Measurement", "percentile"]


@dataclass
class Measurement:
    """One (subject, workload, n, mode) run, in round ``round`` of a repeated benchmark."""

    subject: str
    label: str
    integration: str
    anchor: bool
    workload: str
    n: int
    mode: str
    seconds: float | None = None
    ops_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    failures: int = 0
    error: str | None = None
    #: Measured on a collection created beforehand, after the run on a fresh one failed.
    precreated: bool = False
    embedding_requests: int | None = None
    embedding_inputs: int | None = None
    rows_after: int | None = None
    rows_expected: int | None = None
    #: The physical floor (:mod:`vd_bench.floor`), measured raw right after this run on the
    #: same server: ``floor_round_trips`` embedding requests (``floor_embedding_s``) plus
    #: one merged server request (``floor_server_s``); for the service, the time its
    #: requests would take at the floor latency (see :mod:`vd_bench.service`).
    floor_s: float | None = None
    floor_embedding_s: float | None = None
    floor_server_s: float | None = None
    floor_round_trips: int | None = None
    floor_error: str | None = None
    #: The service only: seconds the same requests (clients, pauses) took against an
    #: endpoint of the same app that only sleeps the floor latency, so the most this web
    #: stack and these clients reach on this machine (see :mod:`vd_bench.service`).
    ceiling_s: float | None = None
    ceiling_error: str | None = None
    #: Concurrent HTTP clients (the service workload only).
    clients: int | None = None
    #: Which repetition (0-based) of a run with ``BenchConfig.repeat`` rounds.
    round: int = 0

    @property
    def ok(self) -> bool:
        return self.failures == 0 and self.error is None

    @property
    def floor_ratio(self) -> float | None:
        """Measured seconds over the floor's (1.0 would be the physical limit)."""
        if self.seconds is None or not self.floor_s:
            return None
        return self.seconds / self.floor_s

    @property
    def ceiling_ratio(self) -> float | None:
        """Measured seconds over the service ceiling's (1.0: as fast as a store at the
        floor could be served here)."""
        if self.seconds is None or not self.ceiling_s:
            return None
        return self.seconds / self.ceiling_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        """From :meth:`to_dict`'s form; fields a file lacks (``round`` in files written
        before repeated runs) take their defaults, keys this version does not know are
        ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
