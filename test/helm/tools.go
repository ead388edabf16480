//go:build tools

// Package helm pins Helm 4, the package manager the end-to-end suite
// installs a chart with (make bin/helm). It is a separate module so that
// nothing in Skiff itself depends on Helm.
package helm

import _ "helm.sh/helm/v4/cmd/helm"
