#!/usr/bin/env bash
# Load benchmark of the HTTP server: ack POSTs and the status page.
#
#     bash scripts/bench-web.sh     # about 2 minutes; on an otherwise idle machine
#
# Targets (ARCHITECTURE.md, "Benchmarks"), with the per-address rate limit raised for the run:
#   - at least 2 000 POST /a/{token} per second (wrk, 2 threads, 50 connections, 20 s,
#     each request a different token in turn);
#   - p99 latency under 20 ms at a fixed 200 requests per second, for POST /a/{token} and
#     for GET /status (Basic auth) with 1 000 obligations on it.
# It prints the figures, the machine (nproc, CPU model) and a summary against the targets,
# and exits 1 if a target is missed or any request failed (a non-2xx answer, a socket
# error), 2 if it could not set up. Not part of `cargo test` or CI.
#
# What it does: builds the release binary; writes a config into a temporary folder with
# 1 000 units (UNITS) owing one one-off report (RULES) whose before-5d step is past on the
# daemon's clock (NHACVIEC_CLOCK, set to Mon 13/10/2025 09:00), the file transport, `ack_per_minute` at 1e9 and a status password; starts `nhacviec run` on a
# free 127.0.0.1 port and waits until the database holds the 1 000 obligations and their
# reminders are written; derives each obligation's ack token as the daemon does (the first
# 16 bytes of HMAC-SHA256 under the key in var/nhacviec.key of "nhacviec ack v1\0" +
# "rule/period/unit", in hex), checks three of them against the links in the decoded
# .eml files and every one with a GET that must answer 200; then runs wrk (Debian's
# package, installed when missing, as scripts/test.sh installs Chromium) four times:
#   1. GET /status at a fixed 200 requests/s for DURATION seconds (10 connections);
#   2. GET /status one request at a time (1 connection), to show what one costs;
#   3. POST /a/{token} (action=done) at a fixed 200 requests/s for DURATION seconds
#      (10 connections);
#   4. POST /a/{token} as fast as it goes: 2 threads, 50 connections, DURATION seconds.
# Fixed rate: wrk has no rate option (wrk2 is not in Debian), so its Lua script paces each
# thread with delay(), scheduling request k of the thread at start + k / rate (monotonic
# clock through LuaJIT's ffi) and sending at once when behind. Latency is wrk's: from the
# write of a request to the end of its response; a request held back because every
# connection was busy is not counted from its scheduled time (wrk2 would), which matters
# only if latencies approach connections / rate = 50 ms, far above the target; a daemon
# that cannot keep up shows as an achieved rate below RATE, which counts as missed.
# The daemon and wrk share the machine's cores: the figures are for both on one machine.
#
# Settings (environment): UNITS (1000) and RULES (1): the obligations are UNITS × RULES,
# the grid UNITS rows by RULES columns; DURATION (20, seconds per run), RATE (200),
# CONNECTIONS (50, run 4), KEEP=1 keeps the temporary folder (config, database, log).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

units=${UNITS:-1000}
rules=${RULES:-1}
obligations=$((units * rules))
duration=${DURATION:-20}
rate=${RATE:-200}
connections=${CONNECTIONS:-50}
target_rps=2000
target_p99_ms=20

if ! command -v wrk >/dev/null; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends wrk
fi

cargo build --release --locked --quiet
bin=$repo/target/release/nhacviec

work=$(mktemp -d /tmp/nhacviec-bench-web.XXXXXX)
daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then
        echo "kept $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
cd "$work"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
password='mật khẩu quản trị'
mkdir -p secrets
printf '%s\n' "$password" > secrets/admin-password
# The daemon's clock is set (NHACVIEC_CLOCK) to Mon 13/10/2025 09:00: the report is due
# Wed 15/10 and its before-5d step (Fri 10/10 08:00) is past, so the first start sends it.
export NHACVIEC_CLOCK=2025-10-13T09:00:00+07:00

# The config: units and rules as inline tables, one line each.
python3 - "$units" "$rules" "$port" > nhacviec.toml <<'EOF'
import sys
units, rules, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
print('unit = [')
print('  { id = "vhxh", name = "Phòng Văn hóa – Xã hội", email = ["vhxh@donghai.example.invalid"] },')
for i in range(1, units):
    print(f'  {{ id = "u{i:04}", name = "Trường Tiểu học Đông Hải số {i}", '
          f'email = ["u{i:04}@donghai.example.invalid"] }},')
print(']')
print('rule = [')
for r in range(1, rules + 1):
    print(f'  {{ id = "bao-cao-{r:02}", kind = "report", '
          f'title = "Báo cáo kết quả thực hiện công tác dân vận chính quyền, phần {r}", '
          f'reference = "Chương trình 05/CTr-UBND, mục III", period = "once", '
          f'due = {{ date = "2025-10-15" }}, units = ["all"], submit_to = "vhxh", policy = "nhac-truoc" }},')
print(']')
print(f"""
[organization]
name = "Ủy ban nhân dân phường Đông Hải"
public_url = "http://127.0.0.1:{port}"
coordinator = "vhxh"

[digest]
to = []

[server]
listen = "127.0.0.1:{port}"
admin_password_file = "secrets/admin-password"
ack_per_minute = 1000000000

[email]
from = "Nhắc việc UBND phường Đông Hải <nhacviec@donghai.example.invalid>"
transport = "file"

[policy.nhac-truoc]
before = ["5d"]
on_due = false
after = []
""")
EOF

"$bin" --config nhacviec.toml check >/dev/null 2>check.log || {
    cat check.log >&2
    exit 2
}
"$bin" --config nhacviec.toml run 2>run.log &
daemon_pid=$!

# Wait for the obligations and their reminders; derive and check the tokens.
python3 - "$obligations" "$port" "$password" "$daemon_pid" <<'EOF' || exit 2
import base64, email, email.policy, glob, hashlib, hmac, http.client, os, sqlite3, sys, time
obligations, port, password, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
deadline = time.monotonic() + 180
while True:
    try:
        db = sqlite3.connect("file:var/nhacviec.db?mode=ro", uri=True, timeout=5)
        n = db.execute("SELECT count(*) FROM obligations").fetchone()[0]
        sent = db.execute("SELECT count(*) FROM messages WHERE status = 'sent'").fetchone()[0]
        keys = [k for (k,) in db.execute("SELECT key FROM obligations ORDER BY key")]
        db.close()
    except sqlite3.Error:
        n = sent = 0
    if n == obligations and sent == obligations:
        break
    if time.monotonic() > deadline or not os.path.exists(f"/proc/{pid}"):
        sys.exit(f"the daemon did not write {obligations} reminders ({n} obligations, {sent} sent); see run.log")
    time.sleep(0.2)
key = bytes.fromhex(open("var/nhacviec.key").read().strip())
token = lambda k: hmac.new(key, b"nhacviec ack v1\0" + k.encode(), hashlib.sha256).hexdigest()[:32]
tokens = [token(k) for k in keys]
with open("tokens.txt", "w") as f:
    f.write("\n".join(tokens) + "\n")
# Three against the links the obligations were mailed (the text part, decoded).
for k in (keys[0], keys[len(keys) // 2], keys[-1]):
    rule, period, unit = k.split("/")
    [path] = glob.glob(f"var/mail/{rule}.{period}.{unit}.before-5d.*.eml")
    msg = email.message_from_binary_file(open(path, "rb"), policy=email.policy.default)
    text = msg.get_body(preferencelist=("plain",)).get_content()
    link = f"http://127.0.0.1:{port}/a/{token(k)}"
    if link not in text:
        sys.exit(f"{k}: the derived link {link} is not in {path}")
# Every token opens its page.
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
for t in tokens:
    conn.request("GET", f"/a/{t}")
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"GET /a/{t}: {r.status}")
auth = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
conn.request("GET", "/status", headers={"Authorization": auth})
r = conn.getresponse()
page = r.read()
cells = page.count(b"data-state=")
if r.status != 200 or cells != obligations:
    sys.exit(f"GET /status: {r.status} with {cells} cells, not {obligations}")
with open("auth.txt", "w") as f:
    f.write(auth)
print(f"{obligations} obligations, {obligations} reminders written; {len(tokens)} distinct tokens, each "
      f"answering 200; /status {len(page)} bytes with {cells} cells")
EOF

# The wrk script: POST /a/{token} over the tokens in turn, or GET /status (Basic auth);
# optionally paced to a fixed rate per thread. Arguments after `--`: MODE RATE_PER_THREAD.
cat > load.lua <<'EOF'
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } nv_timespec;
int clock_gettime(int clk_id, nv_timespec *tp);
]]
local ts = ffi.new("nv_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local mode, interval, next_at, requests, i
function init(args)
  mode = args[1]
  local per_thread = tonumber(args[2])
  interval = per_thread > 0 and 1000 / per_thread or nil
  requests = {}
  if mode == "post" then
    for t in io.lines("tokens.txt") do
      table.insert(requests, wrk.format("POST", "/a/" .. t,
        { ["Content-Type"] = "application/x-www-form-urlencoded" }, "action=done"))
    end
  else
    local auth = io.open("auth.txt"):read("*a")
    table.insert(requests, wrk.format("GET", "/status", { ["Authorization"] = auth }))
  end
  -- Each thread starts at its own place in the tokens, so no two send the same one.
  local threads = tonumber(os.getenv("WRK_THREADS") or "1")
  i = math.floor(#requests * id / threads) % #requests
end

function request()
  i = i % #requests + 1
  return requests[i]
end

if os.getenv("WRK_PACED") == "1" then
  function delay()
    local now = now_ms()
    if not next_at then next_at = now end
    local wait = next_at - now
    next_at = next_at + interval
    if wait <= 0 then return 0 end
    return math.floor(wait + 0.5)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000,
    e.connect + e.read + e.write + e.status + e.timeout))
end
EOF

# One run: NAME THREADS CONNECTIONS PACED MODE; prints wrk's report, returns its RESULT.
run() {
    local name=$1 threads=$2 conns=$3 paced=$4 mode=$5 per_thread=0 how="as fast as it goes"
    if [ "$paced" = 1 ]; then
        per_thread=$((rate / threads))
        how="paced to $rate requests/s"
    fi
    echo "== $name: wrk -t$threads -c$conns -d${duration}s, $how" >&2
    WRK_PACED=$paced WRK_THREADS=$threads wrk -t"$threads" -c"$conns" -d"${duration}s" \
        --timeout 10s --latency -s load.lua "http://127.0.0.1:$port" -- "$mode" "$per_thread" \
        | tee "wrk-$name.txt" >&2
    grep '^RESULT' "wrk-$name.txt" | sed 's/^RESULT //'
}

# The status page first, while every cell is pending (each with its form: the largest
# page). A pause after each run lets the daemon finish what is still queued. The first
# POSTs are the first acks of their obligations (state changes, each waking the engine),
# the later ones repeats (recorded all the same).
status_fixed=$(run status-200rps 2 10 1 status)
sleep 2
# What one /status costs the daemon: one request at a time, as fast as they come.
status_serial=$(run status-serial 1 1 0 status)
sleep 2
post_fixed=$(run post-200rps 2 10 1 post)
sleep 2
post_max=$(run post-max 2 "$connections" 0 post)

field() { sed -n "s/.*\b$2=\([0-9.]*\).*/\1/p" <<<"$1"; }
acks=$(python3 -c '
import sqlite3
db = sqlite3.connect("file:var/nhacviec.db?mode=ro", uri=True, timeout=5)
print(db.execute("SELECT count(*) FROM acks").fetchone()[0], db.execute("SELECT count(*) FROM obligations WHERE state = '"'done'"'").fetchone()[0])')

echo
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1); $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)'); $obligations obligations (units: $units, rules: $rules); runs of ${duration} s"
echo "database afterwards: $acks (acks recorded, obligations done)"
fail=0
check() { # LABEL VALUE OP TARGET
    local verdict=ok
    if ! python3 -c "import sys; sys.exit(0 if $2 $3 $4 else 1)"; then
        verdict=MISSED
        fail=1
    fi
    printf '  %-48s %10s  (target %s %s)  %s\n' "$1" "$2" "$3" "$4" "$verdict"
}
echo "figures:"
check "POST /a/{token}, max throughput, requests/s" "$(field "$post_max" rps)" ">=" "$target_rps"
check "POST /a/{token} at $rate/s: p99 ms" "$(field "$post_fixed" p99_ms)" "<" "$target_p99_ms"
check "GET /status ($obligations cells) at $rate/s: p99 ms" "$(field "$status_fixed" p99_ms)" "<" "$target_p99_ms"
check "POST at $rate/s: achieved requests/s" "$(field "$post_fixed" rps)" ">=" "$((rate * 95 / 100))"
check "GET /status at $rate/s: achieved requests/s" "$(field "$status_fixed" rps)" ">=" "$((rate * 95 / 100))"
echo "  GET /status one at a time: p50 $(field "$status_serial" p50_ms) ms, $(field "$status_serial" rps) requests/s"
for r in "status-200rps:$status_fixed" "status-serial:$status_serial" "post-200rps:$post_fixed" "post-max:$post_max"; do
    echo "  ${r%%:*}: ${r#*:}"
    check "${r%%:*}: failed requests" "$(field "${r#*:}" errors)" "==" 0
done
if grep -q ' ERROR ' run.log; then
    echo "the daemon logged errors:"
    grep ' ERROR ' run.log | head -5
    fail=1
fi
exit $fail
