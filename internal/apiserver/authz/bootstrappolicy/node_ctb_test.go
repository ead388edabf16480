package bootstrappolicy_test

import (
	"testing"

	"github.com/skiff-dev/skiff/internal/apiserver/authz"
	"github.com/skiff-dev/skiff/internal/apiserver/authz/bootstrappolicy"
)

// TestNodeRulesReadClusterTrustBundles: upstream's node rules let a kubelet
// get, list and watch every ClusterTrustBundle (it projects them into pods),
// and nothing more on them.
func TestNodeRulesReadClusterTrustBundles(t *testing.T) {
	rules := bootstrappolicy.NodeRules()
	for verb, want := range map[string]bool{"get": true, "list": true, "watch": true, "create": false, "delete": false} {
		a := authz.Attributes{ResourceRequest: true, Verb: verb, APIGroup: "certificates.k8s.io", APIVersion: "v1", Resource: "clustertrustbundles"}
		if got := authz.RulesAllow(a, rules...); got != want {
			t.Errorf("%s clustertrustbundles: allowed = %v, want %v", verb, got, want)
		}
	}
}
