"""tcpscope states read through the library, as a program would: every event
as a dict from Tracer.events(), one key read from each, counted. Run by
overhead.py as the mode "tcpscope states (library)"; SIGINT ends it, then it
prints the number of events on stdout and, on stderr, what the command line
would say at exit (lost events among it)."""

from __future__ import annotations

import signal
import sys
from collections import Counter

import tcpscope

stopped = False


def stop(signum: int, frame: object) -> None:
    global stopped
    stopped = True


def main() -> None:
    signal.signal(signal.SIGINT, stop)
    changes: Counter[str] = Counter()  # events by new state
    with tcpscope.open("states") as tracer:
        print("Tracing TCP state changes (the library). Ctrl-C to end.", file=sys.stderr, flush=True)
        while not stopped:
            for event in tracer.events(duration=0.5):
                changes[event["newstate"]] += 1
        for event in tracer.events(timeout=0.3):  # what the last wakeup left
            changes[event["newstate"]] += 1
    print(sum(changes.values()))
    for warning in tracer.warnings:
        print(warning, file=sys.stderr)


if __name__ == "__main__":
    main()
