"""Run the benchmark scripts in ``tests/bench``: every ``bench_*.py``, or the ones named.

Benchmarks are scripts, not tests: they measure speed and report it as ratios
against peers measured in the same run (curl, a local read, …), because
absolute numbers depend on the machine and timed assertions in the suite only
make it flaky.  Each script runs in its own interpreter (``python -m
tests.bench.bench_<name>``) from the repository root, so one that fails or
leaks state cannot disturb the next.

Usage::

    ./dev bench                          # all of them
    ./dev bench portal_get               # one (also: bench_portal_get, a path)
    ./dev bench portal_get -- --repeats 3   # arguments after -- go to every script
    ./dev bench --list
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parents[1]
PREFIX = "bench_"


def discover() -> dict[str, Path]:
    """Every benchmark script, keyed by its short name (``bench_portal_get.py`` → ``portal_get``)."""
    return {path.stem.removeprefix(PREFIX): path for path in sorted(BENCH_DIR.glob(f"{PREFIX}*.py"))}


def resolve(name: str, known: dict[str, Path]) -> str:
    """The short name for what the user typed: ``portal_get``, ``bench_portal_get(.py)`` or a path."""
    short = Path(name).name.removesuffix(".py").removeprefix(PREFIX)
    if short not in known:
        raise SystemExit(f"no benchmark {name!r}; known: {', '.join(known) or 'none'}")
    return short


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, extra = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(prog="./dev bench", description="Run portalfs benchmarks.")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    known = discover()
    if args.list:
        for name, path in known.items():
            print(f"{name:<20} {path.relative_to(REPO_ROOT)}")
        return 0
    chosen = [resolve(name, known) for name in args.names] or list(known)

    outcomes: list[tuple[str, int, float]] = []
    for name in chosen:
        print(f"==> benchmark {name}", flush=True)
        started = time.monotonic()
        completed = subprocess.run(
            [sys.executable, "-m", f"tests.bench.{PREFIX}{name}", *extra], cwd=REPO_ROOT, check=False
        )
        outcomes.append((name, completed.returncode, time.monotonic() - started))

    print("\n==> summary")
    for name, code, seconds in outcomes:
        print(f"{name:<20} {'ok' if code == 0 else f'FAILED (exit {code})':<16} {seconds:6.0f} s")
    return 0 if all(code == 0 for _, code, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
