"""Showing what was measured: tables, targets, the JSON record and a bar chart of ratios.

:func:`table` prints one workload: best and median time and rate per row,
then columns chosen by the benchmark (:data:`READ_COLUMNS` or
:data:`WRITE_COLUMNS`: what the portal was asked, what it read or wrote, CPU
per side), then each comparison with its target verdict.  Targets are only
reported, never asserted.  :func:`draw_chart` draws one log-scale panel of
ratios per :class:`Panel` (ratios multiply) and optionally the CPU cost per
GB of some rows; it needs matplotlib (``requirements-bench.txt``).
:func:`save_results` writes both to ``tests/bench/results/<name>-<time>``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.harness.results import MB, Row, Run, Workload

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
REPO_ROOT = Path(__file__).resolve().parents[3]


# --------------------------------------------------------------------- tables


def format_cpu(value: float | None, run_bytes: int, per_gb: bool) -> str:
    if value is None:
        return "-"
    return f"{value / (run_bytes / 1e9):.2f}" if per_gb and run_bytes else f"{value:.2f}"


def _megabytes(value: float | None) -> str:
    return "-" if value is None else f"{value / MB:.1f}"


@dataclass(frozen=True)
class Column:
    """One column after the time and rate columns; ``title`` may name ``{cpu}`` (s or s/GB)."""

    title: str
    width: int
    cell: Callable[[Workload, Row], str]


def cpu_column(title: str, width: int, pick: Callable[[Run], float | None]) -> Column:
    """Median CPU seconds of one side, per GB of payload when the workload says so."""
    return Column(title + " {cpu}", width,
                  lambda w, row: format_cpu(row.median_of(pick), row.best().payload_bytes, w.cpu_per_gb))


REQUESTS = Column("req", 6, lambda w, row: f"{row.median_of(lambda run: run.portal_requests) or 0:.0f}")
CLIENT_MB = Column("client MB", 9, lambda w, row: _megabytes(row.median_of(lambda run: run.client_bytes)))
SERVER_CPU = cpu_column("srv", 9, lambda run: run.server_cpu)
FS_CPU = cpu_column("fs", 8, lambda run: run.fs_cpu)

READ_COLUMNS = [
    REQUESTS,
    Column("log MB", 8, lambda w, row: f"{(row.median_of(lambda run: run.portal_content_bytes) or 0) / MB:.1f}"),
    Column("store MB", 8, lambda w, row: _megabytes(row.median_of(lambda run: run.portal_read_bytes))),
    CLIENT_MB, SERVER_CPU, FS_CPU,
    cpu_column("rd", 8, lambda run: run.reader_cpu),
]
WRITE_COLUMNS = [
    REQUESTS,
    Column("wrote MB", 8, lambda w, row: _megabytes(row.median_of(lambda run: run.portal_written_bytes))),
    CLIENT_MB, SERVER_CPU, FS_CPU,
    cpu_column("wr", 8, lambda run: run.reader_cpu),
]


def table(workload: Workload, columns: list[Column] = READ_COLUMNS) -> str:
    cpu = "s/GB" if workload.cpu_per_gb else "s"
    runs = max(len(row.runs) for row in workload.rows.values())
    lines = [f"{workload.title} (best of {runs})",
             f"{'row':<14} {'best s':>8} {'median s':>9} {'best ' + workload.unit:>13} {'median':>9} "
             + " ".join(f"{column.title.format(cpu=cpu):>{column.width}}" for column in columns)]
    for row in workload.rows.values():
        best = row.best()
        median_rate = statistics.median(workload.rate(run) for run in row.runs)
        lines.append(
            f"{row.name:<14} {best.seconds:>8.2f} {row.median_seconds():>9.2f} {workload.rate(best):>13.1f} "
            f"{median_rate:>9.1f} " + " ".join(f"{column.cell(workload, row):>{column.width}}" for column in columns)
        )
    for comparison in workload.comparisons:
        ratio = workload.ratio(comparison)
        if ratio is None:
            continue
        verdict = ""
        if comparison.target is not None:
            verdict = f"   target >= {comparison.target:g}x: {'met' if ratio >= comparison.target else 'NOT MET'}"
        lines.append(f"  {comparison.subject} / {comparison.peer}: {ratio:.2f}x{verdict}")
    return "\n".join(lines)


# -------------------------------------------------------------------- targets


def collect_targets(workloads: Iterable[Workload], texts: dict[str, str]) -> dict[str, dict]:
    """Every comparison with a target key: its text, ratio, target and whether it is met."""
    targets = {}
    for workload in workloads:
        for comparison in workload.comparisons:
            if comparison.target_key and (ratio := workload.ratio(comparison)) is not None:
                targets[comparison.target_key] = {"text": texts[comparison.target_key], "ratio": ratio,
                                                  "target": comparison.target, "met": ratio >= comparison.target}
    return targets


def print_targets(targets: dict[str, dict]) -> None:
    print("\ntargets:")
    for target in targets.values():
        print(f"  {target['text']:<62} {target['ratio']:7.2f}x  {'met' if target['met'] else 'NOT MET'}")


def print_load(before: float, after: float) -> None:
    print(f"load average (1 min) {before:.1f} before, {after:.1f} after, on {os.cpu_count()} CPUs"
          " (a load above the CPU count means other work competed with this run)")


def summarize(benchmark: str, args: argparse.Namespace, statistic: str, *, started: float,
              load: tuple[float, float], workloads: dict[str, Workload], targets_text: dict[str, str],
              failure: str | None, **extra: object) -> dict:
    """Print the load average (1 min, before and after) and the targets; the run's JSON record: settings
    (every option but ``--tmp``), machine, load, elapsed time, workloads, ``extra``, targets and the
    failure that stopped the rounds early."""
    print_load(*load)
    targets = collect_targets(workloads.values(), targets_text)
    print_targets(targets)
    return {
        "benchmark": benchmark,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {key: value for key, value in vars(args).items() if key != "tmp"},
        "statistic": statistic,
        "machine": describe_machine(),
        "load_average_1min": {"before": load[0], "after": load[1]},
        "elapsed_seconds": time.monotonic() - started,
        "workloads": {w.key: w.as_json() for w in workloads.values()},
        **extra,
        "targets": targets,
        "error": failure,
    }


# ---------------------------------------------------------------------- chart


@dataclass(frozen=True)
class Bar:
    label: str
    ratio: float
    target: float | None = None


@dataclass
class Panel:
    title: str
    bars: list[Bar]
    ylabel: str = "portalfs is x times as fast (best runs)"


def workload_panel(workload: Workload) -> Panel:
    """The workload's comparisons that have both rows, as bars."""
    return Panel(workload.title, [Bar(f"{c.subject}\n÷ {c.peer}", ratio, c.target) for c in workload.comparisons
                                  if (ratio := workload.ratio(c)) is not None])


@dataclass
class CpuPanel:
    """Stacked CPU seconds per GB (medians) of some rows of one workload."""

    title: str
    workload: Workload
    names: list[str]
    parts: list[tuple[str, Callable[[Run], float | None]]] = field(default_factory=list)


def draw_chart(panels: list[Panel], out: Path, headline: str, subtitle: str, cpu: CpuPanel | None = None) -> bool:
    """Log-scale bar charts of the ratios, one panel each, and the CPU panel; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator
    except ImportError:
        return False
    shown = [panel for panel in panels if panel.bars]
    count = len(shown) + (cpu is not None)
    if not count:
        return False
    columns = min(3, count)
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(max(5.4 * columns, 9.0), 4.4 * rows), squeeze=False)
    for axis in axes.flat[count:]:
        axis.set_visible(False)
    times = FuncFormatter(lambda value, _: f"{value:g}x")
    for axis, panel in zip(axes.flat, shown, strict=False):
        values = [bar.ratio for bar in panel.bars]
        colours = ["tab:gray" if b.target is None else "tab:green" if b.ratio >= b.target else "tab:red"
                   for b in panel.bars]
        drawn = axis.bar(range(len(values)), values, color=colours)
        axis.set_xticks(range(len(values)), [bar.label for bar in panel.bars], fontsize=8)
        axis.set_yscale("log")
        axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.yaxis.set_major_formatter(times)
        axis.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
        axis.axhline(1.0, color="black", linewidth=0.8)
        targets = [bar.target for bar in panel.bars if bar.target is not None]
        low, high = min([*values, *targets, 1.0]), max([*values, *targets, 1.0])
        axis.set_ylim(low / 2, high * 2)
        for index, bar in enumerate(panel.bars):
            if bar.target is not None:
                axis.hlines(bar.target, index - 0.45, index + 0.45, colors="black", linestyles="dashed")
        for rectangle, value in zip(drawn, values, strict=True):
            axis.annotate(f"{value:.2f}x", (rectangle.get_x() + rectangle.get_width() / 2, value), ha="center",
                          va="bottom", fontsize=8)
        axis.set_title(panel.title, fontsize=9)
        axis.set_ylabel(panel.ylabel, fontsize=8)
    if cpu is not None:
        axis = axes.flat[len(shown)]
        names = [name for name in cpu.names if name in cpu.workload.rows]
        bottom = [0.0] * len(names)
        for part, pick in cpu.parts:
            heights = []
            for name in names:
                row = cpu.workload.rows[name]
                heights.append((row.median_of(pick) or 0.0) / (row.best().payload_bytes / 1e9))
            axis.bar(names, heights, bottom=bottom, label=part)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        axis.set_ylabel("CPU seconds per GB (medians)", fontsize=8)
        axis.set_title(cpu.title, fontsize=9)
        axis.legend(fontsize=8)
    figure.suptitle(f"{headline}; {subtitle}\ngreen/red: target (dashed line) met/not met; gray: no target",
                    fontsize=9)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return True


# ---------------------------------------------------------------------- saving


def describe_machine() -> dict:
    def first_line(command: list[str]) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False).stdout.split("\n")[0]
        except OSError:
            return "missing"

    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT,
                            check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "portal", "vfs", "cache", "mount", "wire"],
                           capture_output=True, text=True, cwd=REPO_ROOT, check=False).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "curl": first_line(["curl", "--version"]),
        "rclone": first_line(["rclone", "version"]),
        "git_commit": commit,
        "product_tree_dirty": bool(dirty),
    }


def save_results(name: str, report: dict, chart: Callable[[Path], bool]) -> None:
    """``report`` as ``results/<name>-<time>.json`` and ``chart(path)`` as the ``.png`` next to it."""
    RESULTS_DIR.mkdir(exist_ok=True)
    stem = RESULTS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults written to {stem.with_suffix('.json').relative_to(REPO_ROOT)}")
    if chart(stem.with_suffix(".png")):
        print(f"chart written to {stem.with_suffix('.png').relative_to(REPO_ROOT)}")
    else:
        print("no chart: matplotlib is missing (./dev bench installs requirements-bench.txt)")
