//go:build tools

// Package tools pins upstream's external-attacher, which hack/mkimages
// builds from this module as the skiff.test/csi-attacher image.
package tools

import _ "github.com/kubernetes-csi/external-attacher/v4/cmd/csi-attacher"
