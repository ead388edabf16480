//go:build tools

// Package tools pins upstream's external-attacher and external-provisioner,
// which hack/mkimages builds from this module as the skiff.test/csi-attacher
// and skiff.test/csi-provisioner images.
package tools

import (
	_ "github.com/kubernetes-csi/external-attacher/v4/cmd/csi-attacher"
	_ "github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner"
)
