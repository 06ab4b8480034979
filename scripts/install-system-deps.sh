#!/usr/bin/env bash
# Install the system tools the deployment tests need (tests/deploy):
#   promtool / prometheus  (Debian/Ubuntu package "prometheus")
#   alertmanager / amtool  (Debian/Ubuntu package "prometheus-alertmanager")
#   docker-compose         (standalone 1.29, package "docker-compose"; `config -q` needs no engine)
#
# Idempotent: does nothing when all tools are already on PATH. Non-interactive, meant
# to run as root (or with password-less sudo) on a fresh CI machine. The Prometheus
# service that the Debian package would start is kept from starting; tests run their
# own Prometheus.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# Debian installs the Alertmanager binary as prometheus-alertmanager; upstream calls it
# alertmanager.
alertmanager_binary() {
    command -v prometheus-alertmanager 2>/dev/null || command -v alertmanager 2>/dev/null
}

packages=()
command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || packages+=(docker-compose)
if ! command -v amtool >/dev/null 2>&1 || ! alertmanager_binary >/dev/null; then
    packages+=(prometheus-alertmanager)
fi

if [[ ${#packages[@]} -eq 0 ]]; then
    echo "install-system-deps: promtool, alertmanager, amtool and docker-compose already installed"
    exit 0
fi

if [[ ${EUID} -eq 0 ]]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo --non-interactive --preserve-env=DEBIAN_FRONTEND)
else
    echo "install-system-deps: must run as root (or with sudo) to install: ${packages[*]}" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: apt-get not found; install ${packages[*]} by hand" >&2
    exit 1
fi

# Keep package maintainer scripts from starting services (prometheus, alertmanager) while
# installing, unless a policy is already in place.
policy=/usr/sbin/policy-rc.d
created_policy=false
if [[ ! -e ${policy} ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "${policy}" >/dev/null
    "${sudo[@]}" chmod 0755 "${policy}"
    created_policy=true
fi
cleanup() {
    if [[ ${created_policy} == true ]]; then
        "${sudo[@]}" rm -f "${policy}"
    fi
}
trap cleanup EXIT

echo "install-system-deps: installing ${packages[*]}"
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}" </dev/null

# If a service was started anyway (policy ignored), stop and disable it.
stop_service() {
    local package=$1 process=$2
    [[ " ${packages[*]} " == *" ${package} "* ]] || return 0
    pgrep -x "${process}" >/dev/null 2>&1 || return 0
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "${package}" 2>/dev/null; then
        "${sudo[@]}" systemctl disable --now "${package}" || true
    elif command -v service >/dev/null 2>&1; then
        "${sudo[@]}" service "${package}" stop || true
    fi
}
stop_service prometheus prometheus
stop_service prometheus-alertmanager prometheus-alertmanager

command -v promtool >/dev/null
command -v docker-compose >/dev/null
command -v amtool >/dev/null
alertmanager_binary >/dev/null
promtool --version 2>&1 | head -n 1
amtool --version 2>&1 | head -n 1
docker-compose version --short
