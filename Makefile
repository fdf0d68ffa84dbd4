# Kernel programs are built ahead of time and committed; users need no clang.
CLANG ?= clang
LLVM_STRIP ?= llvm-strip
BPF_SRC := $(wildcard bpf/*.bpf.c)
BPF_OBJ := $(patsubst bpf/%.bpf.c,src/tcpscope/bpf/%.bpf.o,$(BPF_SRC))
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Werror \
	-fdebug-prefix-map=$(CURDIR)=. -fno-ident

.PHONY: bpf check-bpf
bpf: $(BPF_OBJ)

src/tcpscope/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h)
	$(CLANG) $(BPF_CFLAGS) -Ibpf -c $< -o $@
	$(LLVM_STRIP) -g $@

# Rebuild into a scratch tree and fail on any byte that differs.
check-bpf:
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	cp -r bpf Makefile $$tmp/ && mkdir -p $$tmp/src/tcpscope/bpf && \
	$(MAKE) -s -C $$tmp bpf && \
	for o in $(BPF_OBJ); do cmp $$o $$tmp/$$o || { echo "$$o is stale: run 'make bpf' and commit"; exit 1; }; done && \
	echo "BPF objects match their sources"
