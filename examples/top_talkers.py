"""Top talkers: the processes whose TCP sessions moved the most bytes in a window.

Traces session lifespans with tcpscope's `life` tool for --seconds, then prints
the --top processes by bytes sent plus received, summed over their sessions that
ended in the window (a session is counted when it closes), as a small table.

    sudo python examples/top_talkers.py --seconds 10 --top 5 [--netns /var/run/netns/web]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

import tcpscope


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to watch (default 10)")
    parser.add_argument("--top", type=int, default=5, help="how many processes to show (default 5)")
    parser.add_argument("--netns", help="only this network namespace (inode or path)")
    args = parser.parse_args()
    options = {} if args.netns is None else {"netns": args.netns}
    # (pid, comm) -> [sessions, bytes sent, bytes received]
    totals: dict[tuple[int | None, str | None], list[int]] = defaultdict(lambda: [0, 0, 0])
    try:
        with tcpscope.open("life", **options) as tracer:
            print(f"Watching TCP sessions for {args.seconds:g} s...", file=sys.stderr, flush=True)
            for session in tracer.events(duration=args.seconds):
                total = totals[session["pid"], session["comm"]]
                total[0] += 1
                total[1] += session["tx_bytes"]
                total[2] += session["rx_bytes"]
            if tracer.lost:
                print(f"warning: {tracer.lost} sessions lost", file=sys.stderr)
    except tcpscope.TcpscopeError as exc:
        print(f"top_talkers: {exc}", file=sys.stderr)
        return exc.exit_code
    ranked = sorted(totals.items(), key=lambda item: (-(item[1][1] + item[1][2]), item[0][0] or 0))
    print(f"{'PID':<8}{'COMM':<16}{'SESSIONS':>8}{'TX_BYTES':>14}{'RX_BYTES':>14}{'TOTAL':>14}")
    for (pid, comm), (sessions, tx, rx) in ranked[:args.top]:
        who = "-" if pid is None else str(pid)
        print(f"{who:<8}{comm or '-':<16}{sessions:>8}{tx:>14}{rx:>14}{tx + rx:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
