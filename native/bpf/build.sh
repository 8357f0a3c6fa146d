#!/bin/sh
# Builds the fast path's BPF object at install time (binding.gyp runs this). Without clang, or if clang fails, the
# build still succeeds: the reason is left in <out>.unavailable, and flanneld's --udp-fastpath=auto logs it and runs
# the native engine alone (=on makes it a startup error).
# Usage: build.sh <source.bpf.c> <out.o>
set -u
src=$1
out=$2
rm -f "$out" "$out.unavailable"
clang=${CLANG:-clang}
if ! command -v "$clang" >/dev/null 2>&1; then
  echo "clang was not installed when flannel-ts was built (apt-get install clang libbpf-dev, then npm run build:native)" >"$out.unavailable"
  echo "flannel-ts: clang not found: the udp fast path will be unavailable" >&2
  exit 0
fi
# <asm/types.h> lives under the multiarch include directory, which clang -target bpf does not search.
multiarch=$(gcc -print-multiarch 2>/dev/null || echo "$(uname -m)-linux-gnu")
if ! "$clang" -O2 -g -Wall -Werror -target bpf -I"/usr/include/$multiarch" -c "$src" -o "$out" 2>"$out.log"; then
  cat "$out.log" >&2
  echo "clang could not build the fast path's BPF object: $(grep -m1 error "$out.log" || head -n1 "$out.log")" >"$out.unavailable"
  rm -f "$out"
fi
rm -f "$out.log"
exit 0
