#!/usr/bin/env bash
# Sets up this Debian machine and runs every check CI runs: format, lints, and all tests,
# including the eBPF end-to-end tests against real servers (they need root; as non-root they
# skip with a reason, and in CI, where CI=true, a skip is a failure).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if [[ $EUID -eq 0 ]]; then
  tools/setup-debian.sh
else
  echo "pxtop: not root: system packages are not checked and eBPF tests will skip" >&2
fi
export INSTA_UPDATE=no
echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== Kubernetes manifests" >&2
tools/validate-manifests.sh
echo "== cargo clippy" >&2
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== cargo build (binaries the end-to-end tests run)" >&2
cargo build --locked --workspace --bins
echo "== cargo test" >&2
cargo test --locked --workspace --no-fail-fast
