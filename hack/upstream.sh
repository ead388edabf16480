#!/usr/bin/env bash
# Upstream Kubernetes v1.37.2 as a test oracle: builds kube-apiserver,
# kube-scheduler, kube-controller-manager and an etcd launcher from the
# test-only module test/upstream, and runs an upstream kube-apiserver (with
# its default flags, plus only what it cannot start without) to compare
# Skiff's answers with, or a whole control plane for bench/scale.
#
#   hack/upstream.sh build               build bin/upstream/* (quick when up to date)
#   hack/upstream.sh start [DIR]         start etcd + kube-apiserver under DIR, print the kubeconfig path
#   hack/upstream.sh plane [DIR]         start etcd + kube-apiserver + kube-scheduler +
#                                        kube-controller-manager, print the kubeconfig path
#   hack/upstream.sh pids [DIR]          print their process ids, comma-separated
#   hack/upstream.sh stop [DIR]          stop them
#   hack/upstream.sh discovery [DIR]     dump discovery into DIR/api-resources.txt and DIR/discovery/
#
# DIR defaults to /tmp/upstream. Ports: UPSTREAM_PORT (default 26443) for the
# API server, UPSTREAM_ETCD_PORT (default 23790) and UPSTREAM_ETCD_PORT+1 for
# etcd; all on 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/bin/upstream"
GO=${GO:-go}
PORT=${UPSTREAM_PORT:-26443}
ETCD_PORT=${UPSTREAM_ETCD_PORT:-23790}

build() {
	mkdir -p "$BIN"
	# go build relinks only when an input changed, so this is quick when
	# the binaries are up to date.
	(cd "$ROOT/test/upstream" && "$GO" build -o "$BIN/" \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-scheduler \
		k8s.io/kubernetes/cmd/kube-controller-manager ./cmd/etcd)
}

# certs writes a CA, a serving certificate for 127.0.0.1/localhost, an admin
# client certificate in system:masters and a service-account key pair.
certs() {
	local d=$1/pki
	[[ -f $d/admin.crt ]] && return 0
	mkdir -p "$d"
	(
		cd "$d"
		openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
		openssl req -x509 -new -key ca.key -subj /CN=upstream-ca -days 3650 -out ca.crt 2>/dev/null
		openssl ecparam -name prime256v1 -genkey -noout -out server.key 2>/dev/null
		openssl req -new -key server.key -subj /CN=kube-apiserver -out server.csr 2>/dev/null
		printf 'subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
			-extfile server.ext -out server.crt 2>/dev/null
		openssl ecparam -name prime256v1 -genkey -noout -out admin.key 2>/dev/null
		openssl req -new -key admin.key -subj "/O=system:masters/CN=upstream-admin" -out admin.csr 2>/dev/null
		printf 'extendedKeyUsage=clientAuth\n' >admin.ext
		openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
			-extfile admin.ext -out admin.crt 2>/dev/null
		openssl ecparam -name prime256v1 -genkey -noout -out sa.key 2>/dev/null
		openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
	)
}

kubeconfig() {
	local dir=$1
	cat >"$dir/admin.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: upstream
  cluster:
    server: https://127.0.0.1:$PORT
    certificate-authority: $dir/pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $dir/pki/admin.crt
    client-key: $dir/pki/admin.key
contexts:
- name: upstream
  context: {cluster: upstream, user: admin}
current-context: upstream
EOF
}

start() {
	local dir=$1 b
	for b in kube-apiserver etcd; do
		[[ -x $BIN/$b ]] || build
	done
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	certs "$dir"
	kubeconfig "$dir"
	if [[ -f $dir/apiserver.pid ]] && kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null; then
		echo "$dir/admin.kubeconfig"
		return 0
	fi
	"$BIN/etcd" --data-dir "$dir/etcd" --listen-client-url "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-url "http://127.0.0.1:$((ETCD_PORT + 1))" >"$dir/etcd.log" 2>&1 &
	echo $! >"$dir/etcd.pid"
	"$BIN/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$ETCD_PORT" \
		--bind-address 127.0.0.1 --secure-port "$PORT" --cert-dir "$dir/certs" \
		--tls-cert-file "$dir/pki/server.crt" --tls-private-key-file "$dir/pki/server.key" \
		--client-ca-file "$dir/pki/ca.crt" \
		--service-account-issuer https://kubernetes.default.svc \
		--service-account-key-file "$dir/pki/sa.pub" \
		--service-account-signing-key-file "$dir/pki/sa.key" \
		>"$dir/apiserver.log" 2>&1 &
	echo $! >"$dir/apiserver.pid"
	local i
	for i in $(seq 1 120); do
		if kubectl --kubeconfig "$dir/admin.kubeconfig" get --raw /readyz >/dev/null 2>&1; then
			echo "$dir/admin.kubeconfig"
			return 0
		fi
		if ! kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null; then
			echo "kube-apiserver exited; see $dir/apiserver.log" >&2
			stop "$dir"
			return 1
		fi
		sleep 1
	done
	echo "kube-apiserver not ready after 120 s; see $dir/apiserver.log" >&2
	return 1
}

# plane starts the API server as start does, then kube-scheduler and
# kube-controller-manager on the admin kubeconfig, with their defaults
# (serving disabled: nothing here scrapes them) except the client rate
# limits, raised as upstream's own scale tests raise them: at the default 20
# requests/s the controller manager takes minutes to untaint 1,000 new nodes.
plane() {
	local dir=$1 kc b
	for b in kube-scheduler kube-controller-manager; do
		[[ -x $BIN/$b ]] || build
	done
	kc=$(start "$dir")
	dir=$(dirname "$kc")
	if ! [[ -f $dir/scheduler.pid ]] || ! kill -0 "$(cat "$dir/scheduler.pid")" 2>/dev/null; then
		"$BIN/kube-scheduler" --kubeconfig "$kc" --secure-port 0 --leader-elect=false \
			--kube-api-qps 500 --kube-api-burst 1000 >"$dir/scheduler.log" 2>&1 &
		echo $! >"$dir/scheduler.pid"
	fi
	if ! [[ -f $dir/controller-manager.pid ]] || ! kill -0 "$(cat "$dir/controller-manager.pid")" 2>/dev/null; then
		"$BIN/kube-controller-manager" --kubeconfig "$kc" --secure-port 0 --leader-elect=false \
			--kube-api-qps 500 --kube-api-burst 1000 \
			--service-account-private-key-file "$dir/pki/sa.key" --root-ca-file "$dir/pki/ca.crt" \
			>"$dir/controller-manager.log" 2>&1 &
		echo $! >"$dir/controller-manager.pid"
	fi
	echo "$kc"
}

pids() {
	local dir=$1 f out=()
	for f in etcd apiserver scheduler controller-manager; do
		[[ -f $dir/$f.pid ]] && out+=("$(cat "$dir/$f.pid")")
	done
	(IFS=,; echo "${out[*]}")
}

# stop ends the clients of kube-apiserver, then kube-apiserver before etcd
# (it cannot shut down without it), each with SIGTERM, then SIGKILL after 20 s.
stop() {
	local dir=$1 f pid i
	for f in controller-manager scheduler apiserver etcd; do
		[[ -f $dir/$f.pid ]] || continue
		pid=$(cat "$dir/$f.pid")
		kill "$pid" 2>/dev/null || true
		for i in $(seq 1 20); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 1
		done
		kill -9 "$pid" 2>/dev/null || true
		rm -f "$dir/$f.pid"
	done
}

# discovery dumps what the running upstream server serves: kubectl's view,
# the legacy discovery documents and the aggregated ones.
discovery() {
	local dir=$1 kc out gv
	kc="$dir/admin.kubeconfig"
	out="$dir/discovery"
	mkdir -p "$out"
	kubectl --kubeconfig "$kc" api-resources -o wide >"$dir/api-resources.txt"
	raw() { kubectl --kubeconfig "$kc" get --raw "$1"; }
	raw /api >"$out/api.json"
	raw /api/v1 >"$out/api_v1.json"
	raw /apis >"$out/apis.json"
	for gv in $(jq -r ".groups[].versions[].groupVersion" "$out/apis.json"); do
		raw "/apis/$gv" >"$out/apis_${gv//\//_}.json"
	done
	# kubectl get --raw cannot set Accept; use curl with the admin certificate.
	local accept='application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList'
	local p
	for p in api apis; do
		curl -sf --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" \
			-H "Accept: $accept" "https://127.0.0.1:$PORT/$p" >"$out/aggregated_$p.json"
	done
	echo "$out"
}

cmd=${1:-}
dir=${2:-/tmp/upstream}
case $cmd in
build) build ;;
start) start "$dir" ;;
plane) plane "$dir" ;;
pids) pids "$dir" ;;
stop) stop "$dir" ;;
discovery) discovery "$dir" ;;
*)
	sed -n '2,18p' "$0" >&2
	exit 2
	;;
esac
