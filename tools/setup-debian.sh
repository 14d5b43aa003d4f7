#!/usr/bin/env bash
# Installs every system package pxtop needs to build, run and test, on Debian bookworm.
# Idempotent: packages already present are skipped; apt is only touched when something is missing.
set -euo pipefail

PKGS=(
  # eBPF build: clang-19 compiles probes/bpf/*.bpf.c; bpftool dumps vmlinux.h from BTF.
  clang-19 llvm-19 libbpf-dev bpftool linux-libc-dev
  # gRPC codegen.
  protobuf-compiler
  # Build basics for -sys crates.
  build-essential pkg-config
  # Real servers and clients for end-to-end tests.
  nginx-light curl python3 redis-server redis-tools postgresql postgresql-client
  mariadb-server mariadb-client python3-pymysql dnsmasq dnsutils python3-grpcio openssl
  # Benchmarks: the floor (bpftrace), load (wrk), timing (hyperfine).
  bpftrace wrk hyperfine
  # One real run of the TUI.
  tmux
  # Offline validation of the Kubernetes manifests (kubernetes-validate from PyPI, in a venv).
  python3-venv
  # TCP health tests: network namespaces, veth, netem loss (iproute2) and a DROP rule (iptables).
  iproute2 iptables
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $EUID -ne 0 ]]; then
    echo "setup: missing packages: ${missing[*]}; run as root (sudo $0)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || echo "setup: apt-get update reported errors; trying to install anyway" >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# nginx from Debian starts itself on install; the tests run their own instances on other ports.
# So do dnsmasq (port 53) and mariadb; the tests start private instances.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now nginx dnsmasq mariadb >/dev/null 2>&1 || true
fi
pkill -f 'nginx: master process /usr/sbin/nginx -g daemon on' 2>/dev/null || true
exit 0
