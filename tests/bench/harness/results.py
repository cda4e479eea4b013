"""The numbers a benchmark collects: runs, rows of runs, workloads of rows, comparisons.

A :class:`Run` is one timed action; a :class:`Row` is every run of one way
of doing it (``portalfs-cold``, ``curl``, …); a :class:`Workload` is one
table: the rows doing the same work, and the :class:`Comparison` pairs whose
ratio ("the subject is x times as fast as the peer", from best runs) is
reported, some with a target from the issue.  The best run is the headline
statistic because interference from other processes only ever slows a run
down; the median says how noisy the runs were.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

KiB = 1 << 10
MiB = 1 << 20
MB = 1_000_000


@dataclass
class Run:
    seconds: float
    #: what the action counted: bytes for sequential transfers, preads, ls entries, files
    operations: int
    payload_bytes: int
    #: CPU seconds of the portal process (None when /proc could not tell)
    server_cpu: float | None
    #: CPU seconds of the mount daemon, or of curl (None for a local action)
    fs_cpu: float | None
    #: CPU seconds of the client side: this process (all threads) or a child like ``ls`` or ``tar``
    reader_cpu: float
    portal_requests: int
    #: content bytes of WebDAV GETs, as the portal's request log records them
    portal_content_bytes: int
    #: bytes the portal read from its store during the run and its tail (/proc/PID/io rchar):
    #: unlike the log it counts replies the portal never finished logging, and ranges it went
    #: on reading for a client that had already hung up
    portal_read_bytes: int | None
    #: content bytes the mount itself says it moved (rclone's rc core/stats; None for portalfs,
    #: which has no outside counter: there the log and the store reads agree)
    client_bytes: int | None
    #: untimed seconds after the action until the portal and the mount were idle again
    #: (their CPU and the counts above include that tail: work this run caused)
    tail_seconds: float
    load_1min: float
    #: bytes the portal wrote (/proc/PID/io wchar): uploaded content landing in its store,
    #: plus its database and its request log
    portal_written_bytes: int | None = None
    #: named numbers beyond the common ones: moments inside the run in seconds from its start
    #: (when ``close()`` returned), per-operation latency percentiles
    details: dict[str, float] = field(default_factory=dict)


@dataclass
class Row:
    name: str
    description: str
    runs: list[Run] = field(default_factory=list)

    def best(self) -> Run:
        return min(self.runs, key=lambda run: run.seconds)

    def median_seconds(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    def median_of(self, pick: Callable[[Run], float | int | None]) -> float | None:
        values = [value for run in self.runs if (value := pick(run)) is not None]
        return statistics.median(values) if values else None

    def as_json(self, rate: Callable[[Run], float]) -> dict:
        best = self.best()
        return {
            "name": self.name,
            "description": self.description,
            "runs": [vars(run) for run in self.runs],
            "best_seconds": best.seconds,
            "median_seconds": self.median_seconds(),
            "best_rate": rate(best),
            "median_rate": statistics.median(rate(run) for run in self.runs),
        }


@dataclass
class Comparison:
    """``subject`` is ``ratio`` times as fast as ``peer`` (from best runs; same work in both)."""

    subject: str
    peer: str
    target: float | None = None
    target_key: str | None = None


@dataclass
class Workload:
    key: str
    title: str
    unit: str
    #: CPU columns per 10^9 payload bytes (large transfers) or in plain seconds
    cpu_per_gb: bool
    rows: dict[str, Row] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)

    def row(self, name: str, description: str) -> Row:
        return self.rows.setdefault(name, Row(name, description))

    def rate(self, run: Run) -> float:
        if self.unit == "MB/s":
            return run.payload_bytes / run.seconds / MB
        return run.operations / run.seconds

    def ratio(self, comparison: Comparison) -> float | None:
        subject, peer = self.rows.get(comparison.subject), self.rows.get(comparison.peer)
        if not subject or not peer or not subject.runs or not peer.runs:
            return None
        return peer.best().seconds / subject.best().seconds

    def as_json(self) -> dict:
        return {
            "title": self.title, "unit": self.unit,
            "rows": [row.as_json(self.rate) for row in self.rows.values()],
            "ratios": [{"subject": c.subject, "peer": c.peer, "ratio": self.ratio(c), "target": c.target}
                       for c in self.comparisons],
        }


def expect(run: Run, operations: int, what: str) -> Run:
    """``run`` if its action counted ``operations``; a run that did less work is an error."""
    if run.operations != operations:
        raise RuntimeError(f"{what}: counted {run.operations}, expected {operations}")
    return run
