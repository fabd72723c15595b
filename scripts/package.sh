#!/usr/bin/env bash
# Builds the Debian package: target/debian/nhacviec_VERSION-REV_ARCH.deb (cargo-deb, with
# `[package.metadata.deb]` in Cargo.toml). Installs cargo-deb if missing.
#
#   bash scripts/package.sh                # release build + package
#   bash scripts/package.sh --deb-revision 2   # extra arguments go to `cargo deb`
#
# What it assembles in target/package/ before `cargo deb --no-build`:
#   - nhacviec.toml: the shipped config with its paths in /var/lib/nhacviec (a conffile in
#     /etc/nhacviec/, as are the calendar files and the templates);
#   - debian/: the maintainer scripts of deploy/debian/, and the daemon's systemd units with
#     the binary in /usr/bin: nhacviec.service and nhacviec@.service (one instance per
#     organisation: /etc/nhacviec/%i.toml, state in /var/lib/nhacviec/%i), which cargo-deb
#     enables and starts (the template is not enabled);
#   - nhacviec-backup.service (the daily backup; its timer is deploy/nhacviec-backup.timer,
#     enabled by the postinst); the sysusers.d and tmpfiles.d files are deploy/sysusers.d/ and deploy/tmpfiles.d/;
#   - the man page (from the clap definitions) and the bash, zsh and fish completions.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --version 3.8.0

cargo build --release --locked
bin=target/release/nhacviec
out=target/package
rm -rf "$out"
mkdir -p "$out/debian" "$out/completions"

sed -e 's|^path = "var/nhacviec.db"|path = "/var/lib/nhacviec/nhacviec.db"|' \
    -e 's|^dir = "var/mail"|dir = "/var/lib/nhacviec/mail"|' \
    config/nhacviec.toml >"$out/nhacviec.toml"
grep -q '^path = "/var/lib/nhacviec/nhacviec.db"' "$out/nhacviec.toml"
grep -q '^dir = "/var/lib/nhacviec/mail"' "$out/nhacviec.toml"

cp deploy/debian/* "$out/debian/"
to_usr_bin() { sed 's|/usr/local/bin/nhacviec|/usr/bin/nhacviec|g' "$1"; }
to_usr_bin deploy/nhacviec.service >"$out/debian/nhacviec.service"
# The template: the same unit, per organisation.
to_usr_bin deploy/nhacviec.service |
    sed -e 's|/etc/nhacviec/nhacviec.toml|/etc/nhacviec/%i.toml|g' \
        -e 's|^StateDirectory=nhacviec$|StateDirectory=nhacviec/%i|' \
        -e 's|^Description=nhacviec:|Description=nhacviec (%i):|' \
        -e 's|^# systemd unit for nhacviec.*|# systemd template unit for nhacviec: one instance per organisation (/etc/nhacviec/%i.toml).|' \
        >"$out/debian/nhacviec@.service"
grep -q 'StateDirectory=nhacviec/%i' "$out/debian/nhacviec@.service"
to_usr_bin deploy/nhacviec-backup.service >"$out/nhacviec-backup.service"

"$bin" manpage | gzip -9n >"$out/nhacviec.1.gz"
"$bin" completions bash >"$out/completions/nhacviec"
"$bin" completions zsh >"$out/completions/_nhacviec"
"$bin" completions fish >"$out/completions/nhacviec.fish"

# Stripped: the release profile keeps line tables for backtraces, which a package does not ship.
cargo deb --no-build --locked --strip "$@"
ls -1 target/debian/*.deb
