#!/usr/bin/env bash
# Installs what Skiff's tests need on a fresh Debian machine. Idempotent:
# it only calls apt-get when something is missing.
set -euo pipefail

need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)

if ((${#need[@]})); then
	echo "installing: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	# Debian's etcd-server package may start a system etcd; tests run their own.
	pkill -x etcd 2>/dev/null || true
fi
command -v go >/dev/null || { echo "Go is required (https://go.dev/dl)"; exit 1; }
