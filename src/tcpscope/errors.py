"""Errors a user can act on, each with its documented exit code.

Library code raises these; only the command line turns them into one line on
stderr and an exit status. Nothing here calls sys.exit.
"""

from __future__ import annotations

__all__ = [
    "EXIT_OK",
    "EXIT_INTERNAL",
    "EXIT_USAGE",
    "EXIT_PERMISSION",
    "EXIT_ENVIRONMENT",
    "EXIT_KERNEL",
    "EXIT_OUTPUT",
    "TcpscopeError",
    "UsageError",
    "NotPermitted",
    "MissingFeature",
    "KernelRefused",
    "OutputFailed",
]

EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug in tcpscope: please report it
EXIT_USAGE = 2  # bad option, value or combination
EXIT_PERMISSION = 3  # not root / missing capabilities
EXIT_ENVIRONMENT = 4  # libbpf, tracefs, BTF or a tracepoint is missing
EXIT_KERNEL = 5  # the kernel refused a BPF map, program or attachment
EXIT_OUTPUT = 6  # the output cannot be written (disk full, closed, ...); a reader gone is not an error


class TcpscopeError(Exception):
    """An error with a message meant for the user and an exit code."""

    exit_code = EXIT_INTERNAL


class UsageError(TcpscopeError):
    """A bad option, value or combination."""

    exit_code = EXIT_USAGE


class NotPermitted(TcpscopeError, PermissionError):
    """Not root, and without the capabilities tracing needs."""

    exit_code = EXIT_PERMISSION


class MissingFeature(TcpscopeError):
    """Something this host or its kernel lacks: libbpf, tracefs, BTF, a
    tracepoint, a kernel feature the tool needs (the message names it)."""

    exit_code = EXIT_ENVIRONMENT


class KernelRefused(TcpscopeError):
    """The kernel refused a BPF map, program or attachment."""

    exit_code = EXIT_KERNEL


class OutputFailed(TcpscopeError):
    """The output cannot be written."""

    exit_code = EXIT_OUTPUT
