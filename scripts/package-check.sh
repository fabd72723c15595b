#!/usr/bin/env bash
# Builds the Debian package and checks it on this machine, as root (CI runs it on a fresh
# machine; it installs and purges the package, so do not run it on a server that has
# nhacviec installed):
#
#   - `dpkg-deb --contents` lists what is promised, with the config, calendar files and
#     templates as conffiles;
#   - lintian passes with no error and no warning (the one accepted warning is overridden
#     in the package itself, deploy/debian-lintian-overrides, and says why);
#   - `dpkg -i` creates the user, the folders with their modes, the conffiles, and enables
#     the units; `systemd-analyze verify` accepts the units;
#   - `nhacviec check` passes as the `nhacviec` user on /etc/nhacviec/nhacviec.toml;
#   - the daemon, started as its unit starts it (the `nhacviec` user, the config in /etc,
#     the state in /var/lib/nhacviec), answers /healthz; `nhacviec backup` writes into
#     /var/lib/nhacviec/backups as the daily timer would;
#   - an upgrade to a rebuilt package (revision 2) keeps an edited conffile;
#   - `dpkg --purge` removes the binary, the config and the state.
#
# This machine does not run systemd as PID 1, so units are verified, enabled (symlinks) and
# the daemon is started by hand as ExecStart would; starting them through systemctl is not
# tested here.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "package-check: FAIL: $*" >&2; exit 1; }
ok() { echo "package-check: ok: $*"; }

[ "$(id -u)" -eq 0 ] || fail "run as root (it installs the package)"
# What the checks use (and systemd for systemd-analyze and systemd-sysusers), from Debian.
need=()
command -v lintian >/dev/null || need+=(lintian)
command -v curl >/dev/null || need+=(curl)
command -v systemd-analyze >/dev/null || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${need[@]}"
fi

bash scripts/package.sh
deb=$(ls -1 target/debian/nhacviec_*-1_*.deb | tail -1)

# What is in it.
contents=$(dpkg-deb --contents "$deb" | awk '{print $6}')
for f in ./usr/bin/nhacviec ./etc/nhacviec/nhacviec.toml ./etc/nhacviec/calendar/vn-2026.toml \
    ./etc/nhacviec/templates/before.txt.j2 ./usr/lib/systemd/system/nhacviec.service \
    ./usr/lib/systemd/system/nhacviec@.service ./usr/lib/systemd/system/nhacviec-backup.service \
    ./usr/lib/systemd/system/nhacviec-backup.timer ./usr/lib/sysusers.d/nhacviec.conf \
    ./usr/lib/tmpfiles.d/nhacviec.conf ./usr/share/man/man1/nhacviec.1.gz \
    ./usr/share/bash-completion/completions/nhacviec ./usr/share/zsh/vendor-completions/_nhacviec \
    ./usr/share/fish/vendor_completions.d/nhacviec.fish ./usr/share/doc/nhacviec/copyright \
    ./usr/share/doc/nhacviec/changelog.Debian.gz; do
    grep -qxF "$f" <<<"$contents" || fail "$f is not in $deb"
done
control=$(mktemp -d)
trap 'rm -rf "$control"' EXIT
dpkg-deb -e "$deb" "$control"
for c in /etc/nhacviec/nhacviec.toml /etc/nhacviec/calendar/vn-2026.toml /etc/nhacviec/templates/before.txt.j2; do
    grep -qxF "$c" "$control/conffiles" || fail "$c is not a conffile"
done
grep -q '^Depends: .*libc6' "$control/control" || fail "Depends not computed: $(grep Depends "$control/control")"
ok "contents, conffiles and Depends"

lintian --fail-on error,warning "$deb" || fail "lintian"
ok "lintian: no error, no warning"

# Install (apt, so that Depends are installed too, as an admin's `apt install ./….deb`).
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "./$deb"
getent passwd nhacviec >/dev/null || fail "no user nhacviec"
[ "$(stat -c '%a %U:%G' /var/lib/nhacviec)" = "750 nhacviec:nhacviec" ] || fail "/var/lib/nhacviec: $(stat -c '%a %U:%G' /var/lib/nhacviec)"
[ "$(stat -c '%a %U:%G' /etc/nhacviec/secrets)" = "750 root:nhacviec" ] || fail "/etc/nhacviec/secrets: $(stat -c '%a %U:%G' /etc/nhacviec/secrets)"
[ -L /etc/systemd/system/multi-user.target.wants/nhacviec.service ] || fail "nhacviec.service not enabled"
[ -L /etc/systemd/system/timers.target.wants/nhacviec-backup.timer ] || fail "the backup timer not enabled"
grep -q '^path = "/var/lib/nhacviec/nhacviec.db"' /etc/nhacviec/nhacviec.toml || fail "the packaged config's storage.path"
zcat /usr/share/man/man1/nhacviec.1.gz | grep -q '^\.TH nhacviec 1' || fail "no man page"
systemd-analyze verify /usr/lib/systemd/system/nhacviec.service \
    /usr/lib/systemd/system/nhacviec-backup.service /usr/lib/systemd/system/nhacviec-backup.timer
ok "installed: user, folders, enabled units, man page; systemd-analyze verify"

runuser -u nhacviec -- nhacviec --config /etc/nhacviec/nhacviec.toml check
ok "check as the nhacviec user"

# The daemon as its unit starts it.
log=$(mktemp)
# setpriv execs the daemon itself (runuser would stand between, catching the SIGTERM).
(cd / && exec setpriv --reuid=nhacviec --regid=nhacviec --init-groups \
    /usr/bin/nhacviec --config /etc/nhacviec/nhacviec.toml run) 2>"$log" &
pid=$!
port=$(sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' /etc/nhacviec/nhacviec.toml)
healthy=
for _ in $(seq 1 100); do
    if health=$(curl -fsS --max-time 2 "http://127.0.0.1:$port/healthz" 2>/dev/null) &&
        [[ $health == *'"last_wake":"'* ]]; then
        healthy=1
        break
    fi
    sleep 0.1
done
[ -n "$healthy" ] || { cat "$log" >&2; kill "$pid" 2>/dev/null || true; fail "no /healthz from the daemon"; }
[ "$(stat -c '%U %a' /var/lib/nhacviec/nhacviec.key)" = "nhacviec 600" ] || fail "key file: $(stat -c '%U %a' /var/lib/nhacviec/nhacviec.key)"
runuser -u nhacviec -- nhacviec --config /etc/nhacviec/nhacviec.toml backup /var/lib/nhacviec/backups --keep 14 |
    grep -q '^backed up /var/lib/nhacviec/nhacviec.db to /var/lib/nhacviec/backups/nhacviec-' || fail "backup"
kill -TERM "$pid"
wait "$pid" || fail "the daemon did not exit 0 on SIGTERM: $(tail -3 "$log")"
rm -f "$log"
ok "the daemon as its unit runs it: /healthz, key file 0600, a backup, exit 0 on SIGTERM"

# An upgrade keeps the admin's edit of a conffile.
echo '# sửa bởi quản trị' >>/etc/nhacviec/nhacviec.toml
cargo deb --no-build --locked --strip --deb-revision 2 >/dev/null
deb2=$(ls -1 target/debian/nhacviec_*-2_*.deb | tail -1)
DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confold "./$deb2"
grep -q '^# sửa bởi quản trị$' /etc/nhacviec/nhacviec.toml || fail "the upgrade lost the edited conffile"
[ "$(dpkg-query -W -f '${Version}' nhacviec)" = "$(dpkg-deb -f "$deb2" Version)" ] || fail "not upgraded"
ok "upgrade to $(dpkg-deb -f "$deb2" Version) kept the edited config"

dpkg --purge nhacviec
for gone in /usr/bin/nhacviec /etc/nhacviec /var/lib/nhacviec /usr/lib/systemd/system/nhacviec.service; do
    [ ! -e "$gone" ] || fail "$gone is still there after purge"
done
ok "purge removed the binary, the config and the state (the user stays, as Debian policy says)"
echo "package-check: all good ($deb)"
