//go:build tools

// Package upstream pins the upstream Kubernetes binaries Skiff's tests use:
// kube-apiserver (an oracle to compare answers with), kube-scheduler (a
// client nobody here wrote), kube-controller-manager (with those two, the
// control plane bench/scale compares Skiff's memory with) and the conformance suite (e2e.test, ginkgo to
// run it in parallel, the kubectl its kubectl specs expect, and agnhost, the
// image most of its specs run, and for the aggregator spec sample-apiserver
// and etcd). It is a separate module so that nothing in Skiff itself
// depends on k8s.io/kubernetes.
package upstream

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/test/e2e"
	_ "k8s.io/kubernetes/test/images/agnhost"
	_ "k8s.io/sample-apiserver"
)
