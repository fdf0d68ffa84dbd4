"""SYN-ACK alert: a line per listener whose SYN-ACK retransmits in an interval reach a threshold.

A retransmitted SYN-ACK means a client's final handshake ACK did not arrive: lost
on the way, or dropped because the listener's accept queue is full. This watches
tcpscope's `synack` events for --seconds and, at the end of every --interval,
alerts for each listener with at least --threshold of them in that interval.

    sudo python examples/synack_alert.py --threshold 10 --interval 5 --seconds 60
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

import tcpscope


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=int, default=10,
                        help="alert at this many retransmits in an interval (default 10)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds per interval (default 5)")
    parser.add_argument("--seconds", type=float, default=60.0, help="stop after this long (default 60)")
    parser.add_argument("--netns", help="only this network namespace (inode or path)")
    args = parser.parse_args()
    options = {} if args.netns is None else {"netns": args.netns}
    try:
        with tcpscope.open("synack", **options) as tracer:
            print(f"Watching SYN-ACK retransmits for {args.seconds:g} s...", file=sys.stderr, flush=True)
            end = time.monotonic() + args.seconds
            while (left := end - time.monotonic()) > 0:
                per_listener: Counter[tuple[str, int]] = Counter()
                owners: dict[tuple[str, int], str] = {}
                for event in tracer.events(duration=min(args.interval, left)):
                    listener = (event["laddr"], event["lport"])
                    per_listener[listener] += 1
                    owners[listener] = f"{event['comm']} (pid {event['pid']})" if event["pid"] else "-"
                for (addr, port), n in sorted(per_listener.items()):
                    if n >= args.threshold:
                        where = f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
                        print(f"{time.strftime('%H:%M:%S')} ALERT {where} {owners[addr, port]}: {n} SYN-ACK "
                              f"retransmits in {args.interval:g} s (threshold {args.threshold})", flush=True)
    except tcpscope.TcpscopeError as exc:
        print(f"synack_alert: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
