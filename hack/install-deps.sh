#!/usr/bin/env bash
# Installs what Skiff needs on a fresh Debian machine: the node runtime
# (containerd, runc, CNI plugins, iptables, conntrack), busybox-static for the
# local busybox image, and etcd, kubectl and chromium for the tests. Idempotent: it
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
# The dashboard's browser tests drive headless chromium.
have chromium || need+=(chromium)

if ((${#need[@]})); then
	echo "installing: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Skiff runs its own etcd and containerd: keep the packages from
	# starting system daemons (Debian's policy-rc.d convention), rather than
	# stopping processes afterwards that might not be ours. An existing
	# policy is left alone.
	policy=/usr/sbin/policy-rc.d
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		trap 'rm -f "$policy"' EXIT
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
have go || { echo "Go is required (https://go.dev/dl)"; exit 1; }
