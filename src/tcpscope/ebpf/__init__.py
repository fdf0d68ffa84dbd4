"""The generic eBPF layer: libbpf through ctypes, objects and their BTF, ring
buffers, tracefs, a small assembler for programs built at run time, and what
a kernel has. It knows nothing of TCP; the tools in tcpscope.tools sit above it."""
