#!/usr/bin/env bash
# Shared by tools/*.sh: checks the Rust toolchain and picks the build cache.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v cargo >/dev/null 2>&1; then
  for c in "$HOME/.cargo/bin" /root/.cargo/bin /usr/local/cargo/bin; do
    [[ -x "$c/cargo" ]] && export PATH="$c:$PATH" && break
  done
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "pxtop: cargo not found. Install Rust 1.95 or newer (rustup.rs) and run this again." >&2
  exit 1
fi
need="1.95"
have="$(rustc --version | awk '{print $2}')"
if [[ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]]; then
  echo "pxtop: rustc $have is too old; pxtop needs $need or newer." >&2
  exit 1
fi
