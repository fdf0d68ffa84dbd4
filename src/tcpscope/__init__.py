"""tcpscope: TCP observability tools on the kernel's stable tracepoints."""

__all__ = ["__version__"]

__version__ = "0.1.0"
