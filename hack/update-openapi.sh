#!/usr/bin/env bash
# Regenerates internal/apiserver/openapi/zz_generated.openapi.go: the OpenAPI
# schemas of the k8s.io/api types Skiff serves (and the CRD and APIService types), made by kube-openapi's
# openapi-gen at the kube-openapi version go.mod pins.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(go list -m -f '{{.Version}}' k8s.io/kube-openapi)
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
cat >"$tools/go.mod" <<MOD
module skiff-tools

go 1.26

require k8s.io/kube-openapi $version
MOD
printf 'package tools\n\nimport _ "k8s.io/kube-openapi/cmd/openapi-gen"\n' >"$tools/tools.go"
(cd "$tools" && GOFLAGS=-mod=mod go build -o openapi-gen k8s.io/kube-openapi/cmd/openapi-gen)

: >"$tools/header.txt"
"$tools/openapi-gen" \
	--output-file zz_generated.openapi.go \
	--output-dir internal/apiserver/openapi \
	--output-pkg github.com/skiff-dev/skiff/internal/apiserver/openapi \
	--go-header-file "$tools/header.txt" \
	--report-filename /dev/null \
	k8s.io/api/core/v1 \
	k8s.io/api/admissionregistration/v1 \
	k8s.io/api/apps/v1 \
	k8s.io/api/authentication/v1 \
	k8s.io/api/authorization/v1 \
	k8s.io/api/autoscaling/v1 \
	k8s.io/api/autoscaling/v2 \
	k8s.io/api/batch/v1 \
	k8s.io/api/certificates/v1 \
	k8s.io/api/coordination/v1 \
	k8s.io/api/discovery/v1 \
	k8s.io/api/events/v1 \
	k8s.io/api/flowcontrol/v1 \
	k8s.io/api/networking/v1 \
	k8s.io/api/node/v1 \
	k8s.io/api/policy/v1 \
	k8s.io/api/rbac/v1 \
	k8s.io/api/resource/v1 \
	k8s.io/api/scheduling/v1 \
	k8s.io/api/scheduling/v1alpha3 \
	k8s.io/api/storage/v1 \
	k8s.io/api/storagemigration/v1 \
	k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1 \
	k8s.io/kube-aggregator/pkg/apis/apiregistration/v1 \
	k8s.io/apimachinery/pkg/apis/meta/v1 \
	k8s.io/apimachinery/pkg/api/resource \
	k8s.io/apimachinery/pkg/runtime \
	k8s.io/apimachinery/pkg/util/intstr \
	k8s.io/apimachinery/pkg/version
gofmt -w internal/apiserver/openapi/zz_generated.openapi.go
