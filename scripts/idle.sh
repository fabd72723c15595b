#!/usr/bin/env bash
# The idle daemon's cost: the release binary with the shipped config, idle for 5 minutes,
# its wake-ups (voluntary context switches, from /proc) per minute and its resident memory.
# Target: at most 1.5 wake-ups per minute and under 10 MB resident. Exits 1 if one is missed.
#
#   bash scripts/idle.sh            # 300 s; IDLE_SECONDS=120 bash scripts/idle.sh for less
#
# Five minutes, because the engine wakes once a minute at rest: a shorter window holds too
# few wakes for the rate to mean much.
#
# Linux only (/proc). It builds target/release/nhacviec, copies config/ to a temporary
# folder (so the shipped config's var/ is never touched), makes the copy listen on a free
# port (`127.0.0.1:0`: the port is read back from the daemon's start-up log line), starts
# `nhacviec --config <copy>/nhacviec.toml run`, waits until /healthz reports its first wake
# (the first start's catch-up sends are done by then), samples every thread's
# voluntary_ctxt_switches (/proc/PID/task/*/status) and VmRSS at t=0 and t=IDLE_SECONDS,
# then stops it with SIGTERM and checks that it exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${IDLE_SECONDS:-300}
max_per_minute=1.5
max_rss_kb=$((10 * 1024))

cargo build --release --locked --quiet
bin=$PWD/target/release/nhacviec

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nhacviec-idle.XXXXXX")
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

cp -a config "$tmp/config"
rm -rf "$tmp/config/var" # a copy of a var/ left by a run of the shipped config
cfg=$tmp/config/nhacviec.toml
sed -i 's/^listen = .*/listen = "127.0.0.1:0"/' "$cfg"
grep -q '^listen = "127.0.0.1:0"$' "$cfg" || {
    echo "idle.sh: no \`listen = …\` line in the [server] section of $cfg" >&2
    exit 2
}

log=$tmp/run.stderr
RUST_LOG=info NO_COLOR=1 "$bin" --config "$cfg" run 2>"$log" &
pid=$!

# Up: the start-up line names the address it listens on; then /healthz reports a wake.
port=
for _ in $(seq 1 200); do
    port=$(grep -o 'listen=127\.0\.0\.1:[0-9]*' "$log" | head -1 | cut -d: -f2 || true)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "idle.sh: the daemon exited:" >&2; cat "$log" >&2; exit 2; }
    sleep 0.05
done
[ -n "$port" ] || { echo "idle.sh: no start-up line in 10 s:" >&2; cat "$log" >&2; exit 2; }

healthz() {
    if command -v curl >/dev/null; then
        curl -fsS --max-time 5 "http://127.0.0.1:$port/healthz"
    else
        exec 3<>"/dev/tcp/127.0.0.1/$port" &&
            printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 &&
            sed '1,/^\r$/d' <&3
        exec 3<&-
    fi
}
health=
for _ in $(seq 1 200); do
    health=$(healthz 2>/dev/null || true)
    case $health in *'"last_wake":"'*) break ;; esac
    health=
    sleep 0.05
done
[ -n "$health" ] || { echo "idle.sh: /healthz reported no wake in 10 s:" >&2; cat "$log" >&2; exit 2; }
echo "up: pid $pid, http://127.0.0.1:$port/healthz: $health"

# One line per live thread: "TID NAME SWITCHES".
threads() {
    local t
    for t in /proc/"$pid"/task/*; do
        printf '%s %s %s\n' "${t##*/}" "$(tr ' ' '_' <"$t/comm")" \
            "$(awk '/^voluntary_ctxt_switches:/ {print $2}' "$t/status")"
    done
}
rss_kb() { awk '/^VmRSS:/ {print $2}' /proc/"$pid"/status; }

t0=$(threads)
rss0=$(rss_kb)
start=$(date +%s.%N)
echo "t=0: RSS ${rss0} kB; threads (tid name voluntary_ctxt_switches):"
echo "$t0" | sed 's/^/  /'
echo "idle for ${seconds} s ..."
sleep "$seconds"
kill -0 "$pid" 2>/dev/null || { echo "idle.sh: the daemon exited while idle:" >&2; cat "$log" >&2; exit 1; }
t1=$(threads)
rss1=$(rss_kb)
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "t=${seconds}: RSS ${rss1} kB; threads:"
echo "$t1" | sed 's/^/  /'

# Per thread: the switches in the window (a thread born in it counts from 0). A thread that
# ended in the window took its count with it: say so, the figure is then a lower bound.
read -r switches gone < <(awk '
    NR == FNR { before[$1] = $3; next }
    { total += $3 - (($1 in before) ? before[$1] : 0); seen[$1] = 1 }
    END {
        for (t in before) if (!(t in seen)) gone++
        print total + 0, gone + 0
    }' <(echo "$t0") <(echo "$t1"))
per_minute=$(awk -v s="$switches" -v e="$elapsed" 'BEGIN { printf "%.2f", s * 60 / e }')
echo "voluntary context switches: $switches in ${elapsed%.*} s = $per_minute per minute (target <= $max_per_minute)"
[ "$gone" -eq 0 ] || echo "note: $gone thread(s) ended during the window; their switches are not counted"
echo "resident memory: $rss1 kB = $(awk -v k="$rss1" 'BEGIN { printf "%.1f", k / 1024 }') MB (target < 10 MB): $(awk '/^RssFile:/ {f=$2} /^RssAnon:/ {a=$2} END {printf "%.1f MB code and files mapped, %.1f MB allocated", f/1024, a/1024}' /proc/"$pid"/status)"

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
if [ "$status" -ne 0 ]; then
    echo "FAIL: exit status $status after SIGTERM" >&2
    cat "$log" >&2
    exit 1
fi
echo "SIGTERM: exit 0"

fail=0
if awk -v p="$per_minute" -v m="$max_per_minute" 'BEGIN { exit !(p > m) }'; then
    echo "FAIL: $per_minute wake-ups per minute, more than $max_per_minute" >&2
    fail=1
fi
if [ "$rss1" -ge "$max_rss_kb" ]; then
    echo "FAIL: $rss1 kB resident, not under 10 MB" >&2
    fail=1
fi
[ "$fail" -eq 0 ] && echo "OK: both targets met"
exit "$fail"
