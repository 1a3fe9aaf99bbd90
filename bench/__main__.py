"""``python -m bench <name>``: run one of the benchmarks and print its table.

python -m bench reliability [--quick]   faults survived: lost, duplicated, crashed
"""

from __future__ import annotations

import sys

from bench import growth, performance, reliability, scaling

BENCHMARKS = {
    "growth": growth.main,
    "performance": performance.main,
    "reliability": reliability.main,
    "scaling": scaling.main,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(__doc__.strip())
        return 2
    return BENCHMARKS[argv[0]](argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
