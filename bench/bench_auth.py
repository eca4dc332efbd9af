"""What verifying an access token and loading the caller adds to a request, as a share of the bare
endpoint's request cost, measured in one run.

Target from the identity issue: verifying an access token and loading the caller adds at most 15% to
the bare endpoint's request cost. Three endpoints are driven alternately at the same concurrency:
the bare FastAPI ``GET /bare`` (the baseline), and the product's ``GET /api/miniapps`` anonymous and
with an operator's bearer token. The two product requests do the same work (a cached manifest list)
except authentication, so their cost difference is what authentication adds; it is divided by the
bare request's cost. Cost is server CPU per request (1 / per-core rate), less sensitive to a noisy
neighbour than wall-clock rates; the rps-based figure is printed beside it. A report: exits 0.

    python -m bench.bench_auth [--seconds S] [--concurrency C] [--rounds R]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence

from bench.harness import (
    BenchError,
    RunningServer,
    Server,
    Target,
    add_load_arguments,
    compare,
    report,
    settings_from,
    superapp_command,
)

ADDED_CEILING = 0.15
DEMO_OFFICIAL = "operator.demo"  # seeded by `superapp seed demo`; operators see the sample tiles


def bearer(running: RunningServer) -> dict[str, str]:
    """A real access token for a seeded official, minted by the CLI against the server's database."""
    result = subprocess.run([*superapp_command(), "users", "token", DEMO_OFFICIAL], env=running.env,
                            cwd=running.workdir, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise BenchError(f"could not mint a token: {result.stderr.strip()}")
    return {"Authorization": f"Bearer {result.stdout.strip()}"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the table and the cost ratio."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_auth", description=__doc__.splitlines()[0])
    add_load_arguments(parser)
    args = parser.parse_args(argv)
    product = Server.product()
    try:
        comparison = compare(
            baseline=Target("bare", Server.bare(), "/bare"),
            targets=[Target("anonymous", product, "/api/miniapps"),
                     Target("bearer", product, "/api/miniapps", headers=bearer)],
            settings=settings_from(args),
        )
    except BenchError as exc:
        print(f"bench_auth: could not measure: {exc}", file=sys.stderr)
        return 2
    print()
    report(comparison, title="GET /api/miniapps anonymous and with a bearer token, vs bare FastAPI GET /bare")
    anonymous, authenticated = comparison.targets
    bare = comparison.baseline
    by_cpu = (1 / authenticated.rps_per_core - 1 / anonymous.rps_per_core) * bare.rps_per_core
    by_rps = (1 / authenticated.rps - 1 / anonymous.rps) * bare.rps
    verdict = "PASS" if by_cpu <= ADDED_CEILING else "ABOVE"
    print(f"authentication adds {by_cpu:+.0%} of the bare request's cost by server CPU per request "
          f"({verdict}, target <= {ADDED_CEILING:.0%}); {by_rps:+.0%} by requests per second")
    return 0

if __name__ == "__main__":
    sys.exit(main())
