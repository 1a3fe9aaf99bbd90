"""``python -m bench <name>``: run one of the benchmarks and print its tables.

python -m bench performance [--quick]   against raw Celery, Dramatiq, blinker, pyee
python -m bench growth                  cost by event size, handlers, queue depth, workers
python -m bench reliability [--quick]   faults survived: lost, duplicated, crashed
python -m bench scaling                 workers and Redis instances for 10k and 100k/s
python -m bench waits [--events N]      the claim and settle round trips, timed in workers

Each starts its own redis-server on loopback; the baselines need the bench extra
(pip install -e '.[dev,bench]', which ./dev bench does).
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("growth", "performance", "reliability", "scaling", "waits")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(__doc__.strip())
        return 2

    # Imported on demand: each benchmark has dependencies of its own.
    benchmark = importlib.import_module(f"bench.{argv[0]}")
    status: int = benchmark.main(argv[1:])
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
