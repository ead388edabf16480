//go:build tools

// Package upstream pins the upstream Kubernetes binaries Skiff's tests use as
// oracles: kube-apiserver (to compare answers with) and kube-scheduler (a
// client nobody here wrote). It is a separate module so that nothing in
// Skiff itself depends on k8s.io/kubernetes.
package upstream

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
