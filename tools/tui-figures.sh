#!/usr/bin/env bash
# The TUI's figures against the real backend (needs root, like pxtopd), for BENCHMARKS.md:
#   - time from Enter on a script in the palette to its first frame with data (pxtop logs it),
#   - idle CPU of pxtop at --refresh 1 over 30 s (utime+stime from /proc/PID/stat),
#   - pxtop's peak RSS (VmHWM) while showing 100,000 rows of px/http_data.
# Traffic: 100,000 real HTTP requests (keep-alive, 4 connections) to a Python server, captured by
# pxtopd's eBPF socket tracer. Release binaries: cargo build --release -p pxtop -p pxtopd.
# Usage: tools/tui-figures.sh [TARGET_DIR]   (BIN=DIR picks another build, e.g. target/debug)
set -euo pipefail

bin=${BIN:-${1:-${CARGO_TARGET_DIR:-target}}/release}
requests=${REQUESTS:-100000}
work=$(mktemp -d)
http_port=18790
grpc=127.0.0.1:50491
sock=pxtop-figures-$$
export PXTOP_TOKEN=figures-$$
pids=()
cleanup() {
  tmux -L "$sock" kill-server 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/pxtopd" --listen "$grpc" --max-output-rows 200000 >"$work/pxtopd.log" 2>&1 &
pids+=($!)
for _ in $(seq 120); do
  "$bin/pxtop" --addr "http://$grpc" scripts >/dev/null 2>&1 && break
  sleep 1
done

python3 - "$http_port" >/dev/null 2>&1 <<'EOF' &
import sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without this each response waits for a delayed ACK.
    disable_nagle_algorithm = True
    def do_GET(self):
        body = b'{"ok":true,"path":"%s"}' % self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
pids+=($!)
sleep 1

echo "sending $requests requests..."
python3 - "$http_port" "$requests" <<'EOF'
import sys, threading, http.client
port, n = int(sys.argv[1]), int(sys.argv[2])
def run(t):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(t, n, 4):
        c.request("GET", f"/figures/{i}")
        c.getresponse().read()
ts = [threading.Thread(target=run, args=(t,)) for t in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
EOF
sleep 3
"$bin/pxtop" --addr "http://$grpc" sql "SELECT count(*) AS captured FROM http_events WHERE req_path LIKE '/figures/%'"

# `exec` keeps the pane's pid pxtop's.
tmux -L "$sock" new-session -d -x 120 -y 40 -s f \
  "exec env HOME=$work XDG_CACHE_HOME=$work PXTOP_LOG=pxtop=info TERM=xterm-256color $bin/pxtop --addr http://$grpc --refresh 1"
pid=$(tmux -L "$sock" display -p -t f '#{pane_pid}')
screen() { tmux -L "$sock" capture-pane -p -t f; }
wait_for() {
  for _ in $(seq 600); do
    screen | grep -q -- "$1" && return 0
    sleep 0.1
  done
  echo "timed out waiting for $1"; screen; exit 1
}
pick() { # pick SCRIPT: palette, type the name, Enter
  tmux -L "$sock" send-keys -t f ':' C-u
  tmux -L "$sock" send-keys -t f -l "$1"
  wait_for "▶ $1"
  tmux -L "$sock" send-keys -t f Enter
  wait_for " $1 │.*rows"
}
cpu_percent() { # CPU share of one core over $1 seconds
  local hz a b
  hz=$(getconf CLK_TCK)
  a=$(awk '{print $14+$15}' "/proc/$pid/stat")
  sleep "$1"
  b=$(awk '{print $14+$15}' "/proc/$pid/stat")
  awk -v a="$a" -v b="$b" -v hz="$hz" -v s="$1" 'BEGIN { printf "%.2f%%\n", (b-a)/hz/s*100 }'
}

wait_for "pick a script"
for _ in 1 2 3 4 5; do
  pick px/http_request_stats
  pick px/http_data
done
echo "Enter -> first frame (ms), px/http_request_stats and px/http_data alternately:"
grep "first frame after choosing" "$work/pxtop/pxtop.log" | sed 's/.*script="\([^"]*\)" ms=\([0-9.]*\).*/\1 \2/'

echo "idle CPU, px/http_data (1000 rows), --refresh 1, 30 s: $(cpu_percent 30)"

# 100k rows: the palette's arguments form sets max_rows and a wide window.
tmux -L "$sock" send-keys -t f ':' C-u
tmux -L "$sock" send-keys -t f -l px/http_data
wait_for "▶ px/http_data"
tmux -L "$sock" send-keys -t f Tab C-u
tmux -L "$sock" send-keys -t f -l -- -30m
tmux -L "$sock" send-keys -t f Tab Tab C-u
tmux -L "$sock" send-keys -t f -l "$requests"
tmux -L "$sock" send-keys -t f Enter
wait_for " $requests rows"
screen | tail -1
echo "idle CPU, px/http_data ($requests rows), --refresh 1, 30 s: $(cpu_percent 30)"
grep -E 'VmHWM|VmRSS' "/proc/$pid/status"
