package admission

import (
	"context"
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

func TestClusterTrustBundleAttest(t *testing.T) {
	gvr := certificatesv1.SchemeGroupVersion.WithResource("clustertrustbundles")
	az := signerPolicy(map[string][]string{
		"exact":  {"attest example.com/signer"},
		"domain": {"attest example.com/*"},
		"signer": {"sign example.com/signer"},
	})
	bundle := func(name, signer string, finalizers ...string) *certificatesv1.ClusterTrustBundle {
		return &certificatesv1.ClusterTrustBundle{
			ObjectMeta: metav1.ObjectMeta{Name: name, Finalizers: finalizers, ResourceVersion: "5"},
			Spec:       certificatesv1.ClusterTrustBundleSpec{SignerName: signer, TrustBundle: "pem"},
		}
	}
	signed := bundle("example.com:signer:a", "example.com/signer")
	rotated := bundle("example.com:signer:a", "example.com/signer")
	rotated.Spec.TrustBundle = "older pem"
	tests := []struct {
		name    string
		user    string
		op      Operation
		obj     *certificatesv1.ClusterTrustBundle
		old     *certificatesv1.ClusterTrustBundle
		wantErr string
	}{
		{name: "no signer: anyone", user: "nobody", op: Create, obj: bundle("plain", "")},
		{name: "attest on the signer", user: "exact", op: Create, obj: signed},
		{name: "attest on the signer's domain", user: "domain", op: Create, obj: signed},
		{name: "another verb is not enough", user: "signer", op: Create, obj: signed,
			wantErr: `clustertrustbundles.certificates.k8s.io "example.com:signer:a" is forbidden: user not permitted to attest for signerName "example.com/signer"`},
		{name: "updates are checked too", user: "nobody", op: Update, obj: signed, old: rotated,
			wantErr: `user not permitted to attest`},
		{name: "except an update of finalizers only", user: "nobody", op: Update,
			obj: bundle("example.com:signer:a", "example.com/signer", "gc"), old: signed},
		{name: "deletes are not checked", user: "nobody", op: Delete, old: signed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Attributes{Operation: tt.op, Resource: gvr, Name: "example.com:signer:a", User: &authn.User{Name: tt.user}}
			if tt.obj != nil {
				a.Object = tt.obj
			}
			if tt.old != nil {
				a.OldObject = tt.old
			}
			err := NewClusterTrustBundleAttest(az).Validate(context.Background(), a)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && (!apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want 403 %q", err, tt.wantErr)
			}
		})
	}
}
