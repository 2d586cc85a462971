"""Results of a benchmark run: tables, JSON and plots, all from the same measurements.

A run of ``repeat`` rounds holds every round's raw measurement (results.json keeps them
all, each with its ``round``). What is reported for a (subject, workload, n, mode) is one
real run, the median one of the rounds (:meth:`BenchResults.get`), so a speed-up, a ratio
against the upstream store, a floor ratio, p50/p99 and the embedding requests all come
from the same measurement; the tables add the spread (min-max) over the rounds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vd_bench import plots
from vd_bench.runner import Measurement
from vd_bench.subjects import ONE_CALL_WORKLOADS, SERVICE

__all__ = ["BenchResults"]

INTEGRATION_TITLES = {"langchain": "LangChain", "llama_index": "LlamaIndex"}
#: The line under the table for a one-call workload measured (its p50/p99 is the one call's).
ONE_CALL_NOTES = {"bulk": "bulk: one call of N documents; ops/s counts documents"}


def is_service(workload: str) -> bool:
    """Whether ``workload`` is a phase of the service workload (``service search``...)."""
    return workload.startswith(SERVICE)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


@dataclass
class BenchResults:
    """Every measurement of one run, with what it was measured on (``meta``)."""

    measurements: list[Measurement]
    meta: dict[str, Any] = field(default_factory=dict)

    # ----- lookups ------------------------------------------------------------------------------

    def subjects(self, integration: str | None = None) -> list[str]:
        seen: dict[str, None] = {}
        for m in self.measurements:
            if integration in (None, m.integration):
                seen.setdefault(m.subject)
        return list(seen)

    def label(self, subject: str) -> str:
        return next(m.label for m in self.measurements if m.subject == subject)

    @property
    def repeat(self) -> int:
        """Rounds measured (1 for a run without ``--repeat``)."""
        return len({m.round for m in self.measurements}) or 1

    def _found(self, subject: str, workload: str, n: int, mode: str) -> list[Measurement]:
        return [
            m
            for m in self.measurements
            if (m.subject, m.workload, m.n, m.mode) == (subject, workload, n, mode)
        ]

    def runs(self, subject: str, workload: str, n: int, mode: str) -> list[Measurement]:
        """Each round's measurement to report, in round order: the usable one (on a
        pre-created collection if the fresh one failed), else the round's last."""
        per_round: dict[int, list[Measurement]] = {}
        for m in self._found(subject, workload, n, mode):
            per_round.setdefault(m.round, []).append(m)
        chosen = []
        for round_ in sorted(per_round):
            found = per_round[round_]
            usable = [m for m in found if m.ok]
            chosen.append(usable[-1] if usable else found[-1])
        return chosen

    def usable_runs(self, subject: str, workload: str, n: int, mode: str) -> list[Measurement]:
        """The rounds' measurements that succeeded, ordered from the fastest: by seconds,
        or for the service's phases by throughput (requests/s), highest first."""
        usable = [m for m in self.runs(subject, workload, n, mode) if m.ok]
        if is_service(workload):
            usable = [m for m in usable if m.ops_per_s is not None]
            return sorted(usable, key=lambda m: -(m.ops_per_s or 0.0))
        usable = [m for m in usable if m.seconds is not None]
        return sorted(usable, key=lambda m: m.seconds or 0.0)

    def get(self, subject: str, workload: str, n: int, mode: str) -> Measurement | None:
        """The measurement to report: of the rounds' usable ones, the median, by ``seconds``
        (for an even count the lower middle, the faster of the two); for the service's
        phases by throughput (``ops_per_s``; for an even count the higher middle, the
        same run as by seconds). A round's usable one is on a pre-created collection if
        its fresh one failed. With no usable round, the last round's failure."""
        usable = self.usable_runs(subject, workload, n, mode)
        if usable:
            return usable[(len(usable) - 1) // 2]
        runs = self.runs(subject, workload, n, mode)
        return runs[-1] if runs else None

    def spread(self, subject: str, workload: str, n: int, mode: str) -> tuple[float, float] | None:
        """Lowest and highest over the usable rounds: seconds, or for the service's
        phases requests/s; None with fewer than two usable rounds."""
        usable = self.usable_runs(subject, workload, n, mode)
        if len(usable) < 2:
            return None
        values = [(m.ops_per_s if is_service(workload) else m.seconds) or 0.0 for m in usable]
        return min(values), max(values)

    def failed_fresh(self, subject: str, workload: str, n: int, mode: str) -> Measurement | None:
        """The failed run on a fresh collection in the reported measurement's round, if the
        reported one had to be pre-created."""
        reported = self.get(subject, workload, n, mode)
        for m in self._found(subject, workload, n, mode):
            same_round = reported is None or m.round == reported.round
            if same_round and not m.precreated and not m.ok:
                return m
        return None

    def keys(self, workloads: Iterable[str] | None = None) -> list[tuple[str, str, int]]:
        """(subject, workload, n) in measurement order, optionally for some workloads only."""
        wanted = None if workloads is None else set(workloads)
        seen: dict[tuple[str, str, int], None] = {}
        for m in self.measurements:
            if wanted is None or m.workload in wanted:
                seen.setdefault((m.subject, m.workload, m.n))
        return list(seen)

    def operation_workloads(self) -> list[str]:
        """The workloads of N operations measured, bulk's one call of N included (the
        service's phases not)."""
        return list(
            dict.fromkeys(m.workload for m in self.measurements if not is_service(m.workload))
        )

    def floor(self, subject: str, workload: str, n: int) -> Measurement | None:
        """The measurement of (subject, workload, n) with the lowest floor among all rounds
        and both modes (the floor is a lower bound: of the samples taken next to each run,
        the lowest is the best estimate)."""
        found = [
            m
            for mode in ("sync", "async")
            for m in self._found(subject, workload, n, mode)
            if m.floor_s
        ]
        return min(found, key=lambda m: m.floor_s or 0.0) if found else None

    def floor_ratio(self, subject: str, workload: str, n: int, mode: str) -> float | None:
        """Measured seconds over the physical floor (1.0 is the limit)."""
        m, floor = self.get(subject, workload, n, mode), self.floor(subject, workload, n)
        if m is None or not m.ok or floor is None:
            return None
        return _ratio(m.seconds, floor.floor_s)

    def speedup(self, subject: str, workload: str, n: int) -> float | None:
        """Async over sync: sync seconds divided by async seconds."""
        sync, async_ = (
            self.get(subject, workload, n, "sync"),
            self.get(subject, workload, n, "async"),
        )
        if not (sync and async_ and sync.ok and async_.ok):
            return None
        return _ratio(sync.seconds, async_.seconds)

    def anchor_of(self, subject: str) -> str | None:
        """The integration ``subject`` is compared against (same framework), if measured."""
        mine = next(m for m in self.measurements if m.subject == subject)
        for m in self.measurements:
            if m.anchor and m.integration == mine.integration:
                return m.subject
        return None

    def ratio_vs_anchor(self, subject: str, workload: str, n: int, mode: str) -> float | None:
        """How many times faster ``subject`` was than its anchor (anchor s / ours s)."""
        anchor = self.anchor_of(subject)
        if anchor is None:
            return None
        ours, theirs = self.get(subject, workload, n, mode), self.get(anchor, workload, n, mode)
        if not (ours and theirs and ours.ok and theirs.ok):
            return None
        return _ratio(theirs.seconds, ours.seconds)

    # ----- text ---------------------------------------------------------------------------------

    def table(self, workloads: Iterable[str] | None = None) -> str:
        """One row per (store, workload, N): times, speed-up, the physical floor (embedding
        + server seconds) and each mode's time over it, latencies, embedding requests.
        With several rounds, each number is the median run's and a time is followed by its
        range over the rounds (``1.20 (1.10-1.45)``). The service workload has its own
        table (:meth:`service_table`)."""
        repeated = self.repeat > 1
        times = " (range)" if repeated else ""
        header = (
            f"| store | workload | N | sync s{times} | async s{times} "
            f"| async speed-up{' (medians)' if repeated else ''} "
            "| floor s (embedding + server) | sync/floor | async/floor | sync p50/p99 ms "
            "| async p50/p99 ms | embedding requests sync/async | notes |"
        )
        lines = [header, "|" + "---|" * 13]
        for subject, workload, n in self.keys(workloads or self.operation_workloads()):
            sync = self.get(subject, workload, n, "sync")
            async_ = self.get(subject, workload, n, "async")
            notes = []
            for mode, m in (("sync", sync), ("async", async_)):
                fresh = self.failed_fresh(subject, workload, n, mode)
                if fresh is not None and m is not None and m.precreated:
                    notes.append(
                        f"{mode} failed on a fresh collection ({fresh.error}); "
                        "measured on a pre-created one"
                    )
                if m is not None and not m.ok:
                    notes.append(f"{mode}: {m.failures} failed: {m.error}")
                notes += self._failed_rounds(subject, workload, n, mode)
                if m is not None and m.floor_error:
                    notes.append(f"{mode} floor not measured: {m.floor_error}")
            speedup = self.speedup(subject, workload, n)
            floor = self.floor(subject, workload, n)
            lines.append(
                f"| {self.label(subject)} | {workload} | {n} "
                f"| {self._value(subject, workload, n, 'sync', sync)} "
                f"| {self._value(subject, workload, n, 'async', async_)} "
                f"| {'-' if speedup is None else f'{speedup:.1f}x'} "
                f"| {_floor(floor)} "
                f"| {_times(self.floor_ratio(subject, workload, n, 'sync'))} "
                f"| {_times(self.floor_ratio(subject, workload, n, 'async'))} "
                f"| {_latency(sync)} | {_latency(async_)} "
                f"| {_count(sync)}/{_count(async_)} | {'; '.join(notes)} |"
            )
        return "\n".join(lines)

    def service_table(self) -> str:
        """The service workload: a row per store, phase and mode: throughput, latency,
        embedding requests, the floor (the phase's requests at the floor latency plus the
        mean pause, ``clients`` at a time) and the ceiling (the same requests against an
        endpoint that only sleeps the floor latency), each with the measured time over it."""
        keys = dict.fromkeys(
            (m.subject, m.workload, m.n, m.mode)
            for m in self.measurements
            if is_service(m.workload)
        )
        rows = [(key, m) for key in keys if (m := self.get(*key)) is not None]
        if not rows:
            return ""
        rps = "req/s (range)" if self.repeat > 1 else "req/s"
        lines = [
            f"| store | service | mode | clients | requests | s | {rps} | p50/p99 ms "
            "| embedding requests | floor req/s | floor latency ms (embedding + server) "
            "| s/floor | ceiling req/s | s/ceiling | notes |",
            "|" + "---|" * 15,
        ]
        for key, m in rows:
            floor_rps = _ratio(m.n, m.floor_s)
            latency = (
                "-"
                if m.floor_embedding_s is None or m.floor_server_s is None
                else f"{(m.floor_embedding_s + m.floor_server_s) * 1000:.0f} "
                f"({m.floor_embedding_s * 1000:.0f} + {m.floor_server_s * 1000:.0f})"
            )
            notes = []
            if not m.ok:
                notes.append(f"{m.failures} failed: {m.error}")
            notes += self._failed_rounds(*key)
            if m.floor_error:
                notes.append(f"floor not measured: {m.floor_error}")
            if m.ceiling_error:
                notes.append(f"ceiling not measured: {m.ceiling_error}")
            if m.rows_expected is not None:
                notes.append(f"rows {m.rows_after}/{m.rows_expected}")
            lines.append(
                f"| {m.label} | {m.workload.removeprefix(SERVICE).strip()} | {m.mode} "
                f"| {m.clients or '-'} | {m.n} | {_fmt(m.seconds)} "
                f"| {self._value(*key, m)} "
                f"| {_latency(m)} | {_count(m)} | {_fmt(floor_rps, 0)} | {latency} "
                f"| {_times(m.floor_ratio)} | {_fmt(_ratio(m.n, m.ceiling_s), 0)} "
                f"| {_times(m.ceiling_ratio, 2)} | {'; '.join(notes)} |"
            )
        return "\n".join(lines)

    def comparison_table(self, workloads: Iterable[str] | None = None) -> str:
        """Ours against the integration we replace, per workload, N and mode (with several
        rounds, the median runs' seconds and their ratio)."""
        medians = " (median)" if self.repeat > 1 else ""
        lines = [
            f"| integration | workload | N | mode | ours s{medians} | theirs s{medians} "
            f"| ours faster by{' (medians)' if medians else ''} |",
            "|" + "---|" * 7,
        ]
        for subject, workload, n in self.keys(workloads):
            anchor = self.anchor_of(subject)
            if anchor is None or anchor == subject:
                continue
            for mode in ("sync", "async"):
                ours, theirs = (
                    self.get(subject, workload, n, mode),
                    self.get(anchor, workload, n, mode),
                )
                if ours is None or theirs is None:
                    continue
                ratio = self.ratio_vs_anchor(subject, workload, n, mode)
                theirs_text = _fmt(theirs.seconds) if theirs.ok else f"failed: {theirs.error}"
                if theirs.precreated:
                    theirs_text += " (pre-created collection)"
                lines.append(
                    f"| {INTEGRATION_TITLES[ours.integration]} | {workload} | {n} | {mode} "
                    f"| {_fmt(ours.seconds)} | {theirs_text} "
                    f"| {'-' if ratio is None else f'{ratio:.2f}x'} |"
                )
        return "\n".join(lines) if len(lines) > 2 else ""

    def summary(self) -> str:
        """Header lines saying what was measured, then the tables."""
        meta = self.meta
        parts = [f"Milvus: {meta.get('milvus', '?')}; embeddings: {meta.get('embeddings', '?')}"]
        if self.repeat > 1:
            parts.append(
                f"Each number is the median of {self.repeat} interleaved rounds (every store "
                "once per round; the median run's, so speed-ups and ratios are of medians); "
                "a range is the lowest to highest over the rounds."
            )
        operations = self.operation_workloads()
        if operations:
            parts += ["", self.table()]
            notes = [ONE_CALL_NOTES[w] for w in operations if w in ONE_CALL_WORKLOADS]
            if notes:
                parts += ["", *notes]
        service = self.service_table()
        if service:
            parts += ["", service]
        comparison = self.comparison_table()
        if comparison:
            parts += ["", comparison]
        return "\n".join(parts)

    def _value(self, subject: str, workload: str, n: int, mode: str, m: Measurement | None) -> str:
        """The reported seconds (for the service's phases requests/s), with the range over
        the rounds when there are several."""
        service = is_service(workload)
        digits = 0 if service else 2
        value = None if m is None else (m.ops_per_s if service else m.seconds)
        text = _fmt(value, digits)
        spread = self.spread(subject, workload, n, mode) if self.repeat > 1 else None
        if spread is not None and value is not None:
            text += f" ({spread[0]:.{digits}f}-{spread[1]:.{digits}f})"
        return text

    def _failed_rounds(self, subject: str, workload: str, n: int, mode: str) -> list[str]:
        """A note when some rounds failed but another is reported."""
        runs = self.runs(subject, workload, n, mode)
        failed = [m for m in runs if not m.ok]
        if not failed or len(failed) == len(runs):
            return []
        return [f"{mode}: {len(failed)} of {len(runs)} rounds failed ({failed[0].error})"]

    # ----- files --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"meta": self.meta, "measurements": [m.to_dict() for m in self.measurements]}

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write results.json, results.md and the plots; returns the paths written."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "results.json", "table": out / "results.md"}
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2))
        paths["table"].write_text(self.summary() + "\n")
        paths.update(self.plot(out))
        return paths

    @classmethod
    def load(cls, path: str | Path) -> BenchResults:
        data = json.loads(Path(path).read_text())
        return cls([Measurement.from_dict(m) for m in data["measurements"]], data.get("meta", {}))

    # ----- plots --------------------------------------------------------------------------------

    def plot(self, out_dir: str | Path) -> dict[str, Path]:
        """PNG plots of the workloads of N operations: time per workload, speed-up, latency
        p50/p99, throughput curves (the service workload is in the tables only)."""
        operations = [m for m in self.measurements if not is_service(m.workload)]
        if not operations:
            return {}
        return plots.save_all(BenchResults(operations, self.meta), Path(out_dir))


def _latency(m: Measurement | None) -> str:
    if m is None or m.p50_ms is None:
        return "-"
    return f"{m.p50_ms:.0f}/{m.p99_ms:.0f}"


def _times(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}x"


def _floor(m: Measurement | None) -> str:
    if m is None or m.floor_s is None:
        return "-"
    return f"{m.floor_s:.2f} ({m.floor_embedding_s or 0:.2f} + {m.floor_server_s or 0:.2f})"


def _count(m: Measurement | None) -> str:
    return "-" if m is None or m.embedding_requests is None else str(m.embedding_requests)
