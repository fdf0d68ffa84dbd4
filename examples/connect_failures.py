"""Connect failures: the share of failed TCP connects per destination over a window.

Counts connect() outcomes in the kernel with tcpscope's `connect` tool (count=True:
no event per connect reaches Python) for --seconds, then prints one line per
destination address and port: connects, how many failed (refused, timed out or
another error), and the failed share; worst first.

    sudo python examples/connect_failures.py --seconds 30 [--netns /var/run/netns/web]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict

import tcpscope


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to count (default 10)")
    parser.add_argument("--netns", help="only this network namespace (inode or path)")
    args = parser.parse_args()
    options = {} if args.netns is None else {"netns": args.netns}
    try:
        with tcpscope.open("connect", count=True, **options) as tracer:
            print(f"Counting connects for {args.seconds:g} s...", file=sys.stderr, flush=True)
            try:
                time.sleep(args.seconds)
            except KeyboardInterrupt:  # Ctrl-C: the counts so far
                pass
            rows = tracer.counts()
    except tcpscope.TcpscopeError as exc:
        print(f"connect_failures: {exc}", file=sys.stderr)
        return exc.exit_code
    # The kernel counts per source and destination: sum up each destination's sources.
    per_destination: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        addr = f"[{row['raddr']}]" if row["family"] == 6 else row["raddr"]
        total = per_destination[f"{addr}:{row['rport']}"]
        total[0] += row["connects"]
        total[1] += row["failed"]
    ranked = sorted(per_destination.items(), key=lambda item: (-item[1][1] / max(item[1][0], 1), item[0]))
    print(f"{'DESTINATION':<46}{'CONNECTS':>9}{'FAILED':>8}{'RATIO':>7}")
    for destination, (connects, failed) in ranked:
        print(f"{destination:<46}{connects:>9}{failed:>8}{failed / max(connects, 1):>7.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
