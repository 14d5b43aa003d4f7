#!/usr/bin/env bash
# Sets up this Debian machine and starts pxtop on it: the backend embedded in the client,
# capturing with eBPF, and the TUI. Needs root (eBPF). Extra arguments go to `pxtop`.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if [[ $EUID -ne 0 ]]; then
  echo "pxtop: capturing with eBPF needs root; run: sudo $0 $*" >&2
  exit 1
fi
tools/setup-debian.sh
echo "pxtop: building (release; the first build takes a few minutes)..." >&2
cargo build --release --locked -p pxtop -p pxtopd
exec "${CARGO_TARGET_DIR:-$ROOT/target}/release/pxtop" --local "$@"
