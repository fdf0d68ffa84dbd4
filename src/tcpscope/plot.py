"""Plots of a flow's samples over time (tcpscope probe --plot), with matplotlib,
an optional extra: pip install 'tcpscope[plot]'."""

from __future__ import annotations

import importlib.util
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from .errors import MissingFeature

__all__ = ["require_matplotlib", "plot_flows", "MAX_FLOWS"]

MAX_FLOWS = 8  # panels: the flows with the most samples


def require_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise MissingFeature("--plot needs matplotlib, which is not installed: "
                             "pip install 'tcpscope[plot]' (or apt-get install python3-matplotlib)")


def _flow(sample: dict[str, Any]) -> str:
    def end(address: str, port: int) -> str:
        return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"

    return f"{end(sample['laddr'], sample['lport'])} -> {end(sample['raddr'], sample['rport'])}"


def plot_flows(samples: Iterable[dict[str, Any]], path: str, start: float) -> list[str]:
    """Draw each flow's cwnd and ssthresh (segments, left axis) and srtt (ms,
    right axis) against seconds since start, one panel per flow (the
    MAX_FLOWS with most samples); return the flows drawn."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window
    import matplotlib.pyplot as plt

    flows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sample in samples:
        flows[_flow(sample)].append(sample)
    chosen = sorted(flows, key=lambda f: -len(flows[f]))[:MAX_FLOWS]
    figure, axes = plt.subplots(max(1, len(chosen)), 1, figsize=(10, 3.2 * max(1, len(chosen))),
                                sharex=True, squeeze=False)
    for ax, flow in zip(axes[:, 0], chosen):
        points = flows[flow]
        seconds = [p["time"] - start for p in points]
        ax.step(seconds, [p["snd_cwnd"] for p in points], where="post", color="tab:blue",
                label="cwnd (segments)")
        ssthresh = [p["ssthresh"] for p in points]  # None until a loss sets it: a gap in the line
        ax.step(seconds, [float("nan") if s is None else s for s in ssthresh], where="post",
                color="tab:orange", label="ssthresh (segments)")
        ax.set_ylabel("segments")
        ax.set_ylim(bottom=0)
        rtt = ax.twinx()
        rtt.plot(seconds, [p["srtt_us"] / 1000 for p in points], color="tab:green", linewidth=0.8,
                 label="srtt (ms, right axis)")
        rtt.set_ylabel("srtt (ms)")
        rtt.set_ylim(bottom=0)
        ax.set_title(f"{flow} ({len(points)} samples)", fontsize=10)
        lines = ax.get_legend_handles_labels()[0] + rtt.get_legend_handles_labels()[0]
        ax.legend(lines, [str(line.get_label()) for line in lines], loc="best", fontsize=8)
        ax.grid(True, alpha=0.3)
    if not chosen:
        axes[0, 0].text(0.5, 0.5, "no samples", ha="center", va="center", transform=axes[0, 0].transAxes)
    axes[-1, 0].set_xlabel("seconds since tracing began")
    figure.suptitle("tcpscope probe: congestion window, slow-start threshold and smoothed RTT per flow")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return chosen
