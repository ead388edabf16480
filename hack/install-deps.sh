#!/usr/bin/env bash
# Installs what Skiff needs on a fresh Debian machine: the node runtime
# (containerd, runc, CNI plugins, iptables, conntrack), busybox-static for the
# local busybox image, and etcd and kubectl for the tests. Idempotent: it
# only calls apt-get when something is missing.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have etcd || need+=(etcd-server)
have kubectl || need+=(kubernetes-client)
have containerd || need+=(containerd)
have runc || need+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
have iptables || need+=(iptables)
have conntrack || need+=(conntrack)
have ip || need+=(iproute2)
[[ -x /bin/busybox ]] && /bin/busybox --list-full >/dev/null 2>&1 || need+=(busybox-static)

if ((${#need[@]})); then
	echo "installing: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	# Packages may start system daemons; Skiff runs its own etcd and containerd.
	pkill -x etcd 2>/dev/null || true
	if [[ -S /run/containerd/containerd.sock ]] && pgrep -x containerd >/dev/null; then
		pkill -x containerd 2>/dev/null || true
	fi
fi
have go || { echo "Go is required (https://go.dev/dl)"; exit 1; }
