#!/usr/bin/env bash
# Upstream's conformance suite (e2e.test v1.37.2) against a Skiff cluster.
#
#   hack/conformance.sh [full]   every [Conformance] spec
#   hack/conformance.sh api      the API-level subset (well under 15 minutes)
#   hack/conformance.sh down     stop a cluster left up by CONFORMANCE_KEEP=1
#
# It builds what is missing (bin/skiff, and e2e.test, ginkgo, kubectl and
# agnhost from the test-only module test/upstream), writes the suite's images
# (hack/mkimages -conformance) into bin/conformance/images, and brings up a
# cluster: `skiff server` on the host and CONFORMANCE_NODES agents, each in
# its own network namespace on a shared bridge, importing those images. The
# specs run in parallel, except [Serial] ones, which run after, one at a time.
# JUnit reports and the suite's output go to bin/conformance/; the last line
# is "N passed, N failed", then the failures. It exits non-zero when a spec
# failed or none passed, so CI can gate on it.
#
# Environment:
#   CONFORMANCE_FOCUS   regexp of specs to run (default: \[Conformance\], or the api subset)
#   CONFORMANCE_SKIP    regexp of specs to skip (default: none)
#   CONFORMANCE_PROCS   parallel ginkgo processes (default 4)
#   CONFORMANCE_NODES   agents (default 2; some specs need two nodes)
#   CONFORMANCE_TIMEOUT limit of each pass (default 24h; a pass cut short
#                       reports what it ran, the running specs as failed)
#   CONFORMANCE_DIR     cluster data (default /tmp/skiff-conformance; short:
#                       containerd's socket path must fit a unix address)
#   CONFORMANCE_KEEP=1  leave the cluster up afterwards (KUBECONFIG is printed)
#
# Needs root (network namespaces, containerd), nsenter, ip and python3.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GO=${GO:-go}
UP="$ROOT/bin/upstream"
OUT="$ROOT/bin/conformance"
IMAGES="$OUT/images"
DIR=${CONFORMANCE_DIR:-/tmp/skiff-conformance}
PROCS=${CONFORMANCE_PROCS:-4}
NODES=${CONFORMANCE_NODES:-2}
SKIFF="$ROOT/bin/skiff"
# The cluster's own addresses, apart from `make up` and the e2e tests.
BRIDGE=skconfbr
NET=172.29.0
CLUSTER_CIDR=10.79.0.0/16
NS_PREFIX=skconf

# The API-level subset (about 100 specs): the SIGs whose specs exercise the
# API server and controllers rather than pod networking, storage or the
# node. The aggregator spec runs upstream's sample-apiserver and etcd,
# built here from test/upstream.
API_FOCUS='\[sig-(api-machinery|auth|architecture|instrumentation)\].*\[Conformance\]'
API_SKIP=''

log() { printf '==> %s\n' "$*" >&2; }

# build makes what is missing or older than the module's pins.
build() {
	(cd "$ROOT" && "$GO" build -o bin/skiff ./cmd/skiff)
	mkdir -p "$UP" "$OUT"
	local pins="$ROOT/test/upstream/go.sum" script="$ROOT/hack/conformance.sh"
	stale() { [[ ! -x $1 || $pins -nt $1 || $script -nt $1 ]]; }
	cd "$ROOT/test/upstream"
	# Built from the module, the binaries would call themselves v0.0.0: the
	# suite derives versions from its own (Pod Security fixtures, kubectl
	# version), so stamp the pinned release as upstream's build does.
	local release
	release=$("$GO" list -m -f '{{.Version}}' k8s.io/kubernetes)
	local minor=${release#v1.}
	minor=${minor%%.*}
	local stamp="-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
	stamp+=" -X k8s.io/component-base/version.gitVersion=$release -X k8s.io/component-base/version.gitTreeState=clean"
	stamp+=" -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
	stamp+=" -X k8s.io/client-go/pkg/version.gitVersion=$release -X k8s.io/client-go/pkg/version.gitTreeState=clean"
	if stale "$UP/ginkgo" || stale "$UP/kubectl"; then
		log "building ginkgo and kubectl"
		"$GO" build -ldflags "$stamp" -o "$UP/" github.com/onsi/ginkgo/v2/ginkgo k8s.io/kubernetes/cmd/kubectl
	fi
	if stale "$UP/agnhost"; then
		log "building agnhost"
		CGO_ENABLED=0 "$GO" build -ldflags '-s -w' -o "$UP/agnhost" k8s.io/kubernetes/test/images/agnhost
	fi
	local porter
	porter="$("$GO" list -m -f '{{.Dir}}' k8s.io/kubernetes)/test/images/agnhost/porter"
	cp "$porter/localhost.crt" "$porter/localhost.key" "$UP/"
	if stale "$UP/nonewprivs"; then
		CGO_ENABLED=0 "$GO" build -ldflags '-s -w' -o "$UP/nonewprivs" k8s.io/kubernetes/test/images/nonewprivs
	fi
	# The aggregator spec's extension API server and its etcd (etcd-server:
	# bin/upstream/etcd is hack/upstream.sh's launcher, with other flags).
	if stale "$UP/sample-apiserver" || stale "$UP/etcd-server"; then
		log "building sample-apiserver and etcd"
		CGO_ENABLED=0 "$GO" build -ldflags '-s -w' -o "$UP/sample-apiserver" k8s.io/sample-apiserver
		CGO_ENABLED=0 "$GO" build -ldflags '-s -w' -o "$UP/etcd-server" go.etcd.io/etcd/server/v3
	fi
	if stale "$UP/e2e.test"; then
		log "building e2e.test (several minutes the first time)"
		"$GO" test -c -ldflags "$stamp" -o "$UP/e2e.test" k8s.io/kubernetes/test/e2e
	fi
	cd "$ROOT"
	log "writing images into $IMAGES"
	"$GO" run ./hack/mkimages -out "$IMAGES" -conformance -agnhost "$UP/agnhost" -nonewprivs "$UP/nonewprivs" \
		-sample-apiserver "$UP/sample-apiserver" -etcd "$UP/etcd-server"
}

# up starts the server on the bridge address and NODES agents in network
# namespaces, and waits until every node is Ready.
up() {
	mkdir -p "$DIR"
	DIR=$(cd "$DIR" && pwd)
	ip link add "$BRIDGE" type bridge
	ip addr add "$NET.1/24" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	local port=26444
	log "starting skiff server (logs: $DIR/server.log)"
	"$SKIFF" server --data-dir "$DIR/server" --bind-address 0.0.0.0 --advertise-address "$NET.1" --secure-port "$port" \
		--cluster-cidr "$CLUSTER_CIDR" >"$DIR/server.log" 2>&1 &
	echo $! >"$DIR/server.pid"
	KUBECONFIG="$DIR/server/admin.kubeconfig"
	export KUBECONFIG
	local i
	for i in $(seq 1 120); do
		[[ -f $KUBECONFIG ]] && kubectl get --raw /readyz >/dev/null 2>&1 && break
		kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null || { tail -20 "$DIR/server.log" >&2; return 1; }
		sleep 1
	done
	local out token hash
	out=$("$SKIFF" token create --data-dir "$DIR/server" 2>&1) # the token on stdout, the hash in the hint on stderr
	token=$(grep -oE '^[a-z0-9]{6}\.[a-z0-9]{16}$' <<<"$out")
	hash=$(grep -oE 'sha256:[0-9a-f]{64}' <<<"$out" | head -1)
	printf '%s\n' "$token" >"$DIR/join-token"
	local n ns ip
	for n in $(seq 1 "$NODES"); do
		ns="$NS_PREFIX-$n" ip="$NET.$((10 + n))"
		ip netns add "$ns"
		ip link add "${NS_PREFIX}h$n" type veth peer name "${NS_PREFIX}v$n"
		ip link set "${NS_PREFIX}v$n" netns "$ns"
		ip link set "${NS_PREFIX}h$n" master "$BRIDGE" up
		ip netns exec "$ns" ip addr add "$ip/24" dev "${NS_PREFIX}v$n"
		ip netns exec "$ns" ip link set "${NS_PREFIX}v$n" up
		ip netns exec "$ns" ip link set lo up
		ip netns exec "$ns" ip route add default via "$NET.1"
		mkdir -p "$DIR/node-$n"
		log "starting agent node-$n at $ip (logs: $DIR/node-$n.log)"
		nsenter --net="/run/netns/$ns" "$SKIFF" agent --data-dir "$DIR/node-$n" --node-name "node-$n" \
			--node-ip "$ip" --server "https://$NET.1:$port" --token-file "$DIR/join-token" --ca-cert-hash "$hash" \
			--cluster-cidr "$CLUSTER_CIDR" --pod-log-dir "$DIR/node-$n/log" --images-dir "$IMAGES" \
			>"$DIR/node-$n.log" 2>&1 &
		echo $! >"$DIR/node-$n.pid"
	done
	for i in $(seq 1 300); do
		local ready
		ready=$(kubectl get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c True || true)
		if ((ready == NODES)); then
			log "$NODES nodes Ready; KUBECONFIG=$KUBECONFIG"
			host_routes
			return 0
		fi
		sleep 1
	done
	log "nodes not Ready after 300 s"
	kubectl get nodes >&2 || true
	return 1
}

# host_routes sends the host's traffic for each node's pod range to that
# node, as the agents' host-gw routes do between nodes: the server on the
# host calls admission and conversion webhooks and extension API servers at
# pod addresses. (Without them, pod addresses leave by the default route.)
host_routes() {
	local cidr ip
	while read -r cidr ip; do
		[[ -n $cidr && -n $ip ]] && ip route replace "$cidr" via "$ip"
	done < <(kubectl get nodes -o jsonpath='{range .items[*]}{.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}')
}

# down stops the agents (SIGTERM, then their leftovers with skiff killall),
# the server, and removes the namespaces and the bridge.
down() {
	local f pid n i
	for f in "$DIR"/node-*.pid "$DIR/server.pid"; do
		[[ -f $f ]] || continue
		pid=$(cat "$f")
		kill "$pid" 2>/dev/null || true
		for i in $(seq 1 60); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 1
		done
		kill -9 "$pid" 2>/dev/null || true
		rm -f "$f"
	done
	for n in $(seq 1 "$NODES"); do
		if [[ -d $DIR/node-$n ]]; then
			nsenter --net="/run/netns/$NS_PREFIX-$n" "$SKIFF" killall --data-dir "$DIR/node-$n" >/dev/null 2>&1 ||
				"$SKIFF" killall --data-dir "$DIR/node-$n" >/dev/null 2>&1 || true
		fi
		ip netns delete "$NS_PREFIX-$n" 2>/dev/null || true
	done
	ip link delete "$BRIDGE" 2>/dev/null || true
	rm -rf "$DIR"
}

# suite runs one ginkgo pass; $1 names its report, the rest are ginkgo flags.
suite() {
	local name=$1
	shift
	log "running the $name pass: $*"
	local start=$SECONDS
	"$UP/ginkgo" --timeout="${CONFORMANCE_TIMEOUT:-24h}" --no-color --output-dir="$OUT" --junit-report="junit_$name.xml" "$@" \
		"$UP/e2e.test" -- --provider=skeleton --kubeconfig="$KUBECONFIG" --kubectl-path="$UP/kubectl" \
		--report-dir="$OUT/$name" --disable-log-dump --dump-logs-on-failure=false \
		2>&1 | tee "$OUT/$name.log" >/dev/null || true
	log "$name pass took $((SECONDS - start)) s"
}

# summarize prints counts per SIG and the failures from the JUnit reports,
# and fails when a spec failed or none passed.
summarize() {
	python3 - "$@" <<'EOF'
import collections, re, sys, xml.etree.ElementTree as ET
passed, failed, per_sig = [], [], collections.defaultdict(lambda: [0, 0])
why = {}
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        continue
    for tc in root.iter("testcase"):
        name = re.sub(r"^\[It\] ", "", tc.get("name", ""))
        status = tc.get("status", "")
        if not name.startswith("[sig-") or status not in ("passed", "failed", "panicked", "timedout", "interrupted"):
            continue
        sig = re.match(r"\[(sig-[a-z-]+)\]", name).group(1)
        if status == "passed":
            passed.append(name)
            per_sig[sig][0] += 1
        else:
            failed.append(name)
            per_sig[sig][1] += 1
            f = tc.find("failure")
            if f is None:
                f = tc.find("error")
            if f is not None:
                why[name] = (f.get("message") or f.text or "").strip()
for sig in sorted(per_sig):
    print(f"  {sig}: {per_sig[sig][0]} passed, {per_sig[sig][1]} failed")
print(f"{len(passed)} passed, {len(failed)} failed")
for name in sorted(failed):
    print("FAIL:", name)
    # The first lines of the reason: CI keeps only this summary.
    for line in why.get(name, "").splitlines()[:12]:
        print("   ", line[:300])
# A pass that ran nothing is a failure too: a broken cluster or focus would
# otherwise read as green.
sys.exit(1 if failed or not passed else 0)
EOF
}

# deps installs the host tools the agnhost stand-in image copies (curl,
# dig, nc: upstream's image has them) when they are missing.
deps() {
	local need=()
	[[ -x /usr/bin/curl ]] || need+=(curl)
	[[ -x /usr/bin/dig ]] || need+=(bind9-dnsutils)
	[[ -x /usr/bin/nc ]] || need+=(netcat-openbsd)
	((${#need[@]})) || return 0
	log "installing: ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

main() {
	local mode=${1:-full}
	if [[ $mode == down ]]; then
		down
		return
	fi
	if ((EUID != 0)); then
		echo "conformance: needs root (network namespaces and containerd)" >&2
		return 1
	fi
	local focus skip
	case $mode in
	full) focus='\[Conformance\]' skip='' ;;
	api) focus=$API_FOCUS skip=$API_SKIP ;;
	*)
		sed -n '2,25p' "$0" >&2
		return 2
		;;
	esac
	focus=${CONFORMANCE_FOCUS:-$focus}
	skip=${CONFORMANCE_SKIP:-$skip}
	bash "$ROOT/hack/install-deps.sh"
	deps
	build
	if [[ -e $DIR ]]; then
		log "$DIR exists: stopping what is left of an earlier run"
		down
	fi
	[[ ${CONFORMANCE_KEEP:-} == 1 ]] || trap down EXIT
	up
	rm -f "$OUT"/junit_*.xml
	local start=$SECONDS
	# The suite marks [Serial] specs with the Ginkgo label Serial too; a
	# label filter narrows the focus (several --focus would widen it).
	local sel=(--focus="$focus" ${skip:+--skip="$skip"})
	suite parallel --procs="$PROCS" --label-filter='!Serial' "${sel[@]}"
	suite serial --label-filter=Serial "${sel[@]}"
	log "conformance ($mode) took $((SECONDS - start)) s"
	summarize "$OUT/junit_parallel.xml" "$OUT/junit_serial.xml" | tee "$OUT/summary.txt"
}

main "$@"
