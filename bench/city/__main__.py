"""``python -m bench.city --url URL [--scale 1.0] [--parts people,feed,...] [--seed N]``: load a synthetic Hue."""

from __future__ import annotations

import argparse
import sys

from bench.city import PARTS, generate, report
from bench.city.base import CityError
from config import SettingsError
from core.db import DatabaseUnavailable, safe_url


def main(argv: list[str] | None = None) -> int:
    """Generate the city as the arguments ask; exit 2 with one line when it must not or cannot."""
    parser = argparse.ArgumentParser(prog="python -m bench.city", description=__doc__)
    parser.add_argument("--url", required=True, help="database URL (sqlite:///... or postgresql://...)")
    parser.add_argument("--scale", default="1.0", help="1.0 = Hue's real size (1.3 M residents); (0, 3]")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from: {','.join(PARTS)}")
    parser.add_argument("--seed", type=int, default=2025, help="random seed (the same seed gives the same city)")
    args = parser.parse_args(argv)
    try:
        city, results = generate(args.url, scale=args.scale, parts=args.parts, seed=args.seed)
    except (CityError, SettingsError, DatabaseUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"\nsynthetic Hue at scale {city.scale:g} in {safe_url(args.url)}")
    for line in report(city, results):
        print(line)
    city.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
