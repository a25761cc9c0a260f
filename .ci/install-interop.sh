#!/usr/bin/env bash
# Installs what the interop tests need (issue 3 item 5, issue 4 item 10): Debian's tftpd-hpa
# (in.tftpd) and tftp-hpa (the tftp client); curl is checked for tftp:// support.
#
# - Idempotent: does nothing when in.tftpd and tftp are already there.
# - Never starts a daemon: Debian's tftpd-hpa package would start one on 0.0.0.0:69. A
#   policy-rc.d that exits 101 forbids service starts during the install (and is removed after,
#   even on failure); the tests start in.tftpd themselves, in the foreground, on 127.x only.
# - Never fails the CI run: without root, apt or a registry, it prints one line and exits 0,
#   and the interop tests skip with their reason.
set -u

say() { echo "install-interop: $*"; }

have() { command -v "$1" >/dev/null 2>&1; }
tftpd_bin() { have in.tftpd || [ -x /usr/sbin/in.tftpd ]; }

if tftpd_bin && have tftp; then
    say "tftpd-hpa and tftp-hpa already installed"
else
    if [ "$(id -u)" != 0 ] || ! have apt-get; then
        say "not root or no apt-get: interop tests will skip"
        exit 0
    fi
    # Ours for the install's duration; a policy-rc.d already there (Docker images ship one) is
    # moved aside and put back, so whatever it says cannot let the daemon start.
    policy=/usr/sbin/policy-rc.d
    saved=""
    if [ -e "$policy" ]; then
        saved="$policy.trustscan-saved.$$"
        mv "$policy" "$saved"
    fi
    cleanup() {
        rm -f "$policy"
        if [ -n "$saved" ]; then mv "$saved" "$policy"; fi
    }
    trap cleanup EXIT
    printf '#!/bin/sh\n# trustscan .ci/install-interop.sh: no daemon starts during install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    export DEBIAN_FRONTEND=noninteractive
    log=$(mktemp)
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends tftpd-hpa tftp-hpa; } >"$log" 2>&1; then
        say "apt-get failed (interop tests will skip): $(tail -n 1 "$log")"
        rm -f "$log"
        exit 0
    fi
    rm -f "$log"
    # Belt and braces: should a daemon have started anyway (no policy-rc.d honoured, e.g. a
    # systemd unit), stop it and keep it from starting at boot.
    if have systemctl; then
        systemctl stop tftpd-hpa >/dev/null 2>&1 || true
        systemctl disable tftpd-hpa >/dev/null 2>&1 || true
    fi
    if [ -x /etc/init.d/tftpd-hpa ]; then
        /etc/init.d/tftpd-hpa stop >/dev/null 2>&1 || true
    fi
    say "installed tftpd-hpa and tftp-hpa"
fi

# Nothing may listen on UDP port 69 (the machine rule: no listener on a non-loopback address).
if have ss && ss -lunH 2>/dev/null | awk '$4 ~ /:69$/ {found=1} END {exit !found}'; then
    say "WARNING: something listens on UDP port 69:"
    ss -lunp 2>/dev/null | awk '$4 ~ /:69$/' || true
fi
if have curl && ! curl --version 2>/dev/null | grep -qi ' tftp'; then
    say "curl lacks tftp:// support: the curl interop tests will skip"
fi
exit 0
