"""Run benchmarks: ``python bench/run.py`` runs all, ``python bench/run.py NAME`` one.

Each benchmark is a module ``bench/<name>.py`` with ``run() -> dict`` returning the
keyword arguments of ``_harness.write_result`` (minus ``conditions`` extras it adds
itself). Several names run one after another, each in its own process and its own
fresh database. ``--keep`` leaves the benchmark database in place for inspection.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def available() -> list[str]:
    return sorted(
        path.stem
        for path in BENCH_DIR.glob("*.py")
        if not path.stem.startswith("_") and path.stem != "run"
    )


def run_one(name: str, *, keep: bool) -> None:
    from bench import _harness

    module = importlib.import_module(f"bench.{name}")
    print(f"== {name}", flush=True)
    with _harness.bench_database(keep=keep):
        module.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks: {', '.join(available())}"
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args(argv)
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    if len(names) == 1:
        run_one(names[0], keep=args.keep)
        return 0
    failed = []
    for name in names:
        started = time.monotonic()
        command = [sys.executable, str(Path(__file__).resolve()), name]
        if args.keep:
            command.append("--keep")
        if subprocess.run(command, cwd=ROOT, check=False).returncode:
            failed.append(name)
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
