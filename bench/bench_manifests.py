"""GET /api/miniapps against a bare FastAPI endpoint at the same concurrency, as ratios.

Target from the issue: "GET /api/miniapps at least 60% of the bare endpoint's requests per second at
the same concurrency, with its p99 latency". The rps ratio is marked PASS/BELOW; the p99 ratio is
printed next to it. This is a report, not a test: it exits 0 whatever the ratios are, and non-zero
only when it could not measure (a server did not start, an endpoint answered an error).

    python -m bench.bench_manifests [--seconds S] [--concurrency C] [--rounds R]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench.harness import BenchError, Server, Target, add_load_arguments, compare, report, settings_from

RPS_FLOOR = 0.60


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the table; 0 unless the benchmark itself failed."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_manifests", description=__doc__.splitlines()[0])
    add_load_arguments(parser)
    args = parser.parse_args(argv)

    product = Server.product()  # one process serves both product targets
    try:
        comparison = compare(
            baseline=Target("bare", Server.bare(), "/bare"),
            targets=[
                Target("miniapps", product, "/api/miniapps"),
                Target("miniapps en", product, "/api/miniapps", headers={"Accept-Language": "en"}),
            ],
            settings=settings_from(args),
        )
    except BenchError as exc:
        print(f"bench_manifests: could not measure: {exc}", file=sys.stderr)
        return 2
    print()
    report(comparison, title="GET /api/miniapps (anonymous) vs bare FastAPI GET /bare",
           rps_floor=RPS_FLOOR)
    print(f"target: rps ratio >= {RPS_FLOOR:.2f} (issue); p99 ratio reported for reading, "
          "the issue states no bound for it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
