package apiserver_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// A Service's type changes allocate and release its addresses as upstream
// does: ClusterIP → NodePort gets node ports, → ExternalName gives up its
// cluster IP, and back gets a new one.
func TestServiceTypeChangesAllocateAndRelease(t *testing.T) {
	ctx := context.Background()
	s := testserver.Start(t)
	svcs := s.Client.CoreV1().Services("default")

	svc, err := svcs.Create(ctx, clusterIPService("flip", ""), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip := svc.Spec.ClusterIP

	patch := func(body string) *corev1.Service {
		t.Helper()
		out, err := svcs.Patch(ctx, "flip", types.MergePatchType, []byte(body), metav1.PatchOptions{})
		if err != nil {
			t.Fatalf("patch %s: %v", body, err)
		}
		return out
	}

	np := patch(`{"spec":{"type":"NodePort"}}`)
	port := np.Spec.Ports[0].NodePort
	if port < 30000 || port > 32767 {
		t.Fatalf("ClusterIP → NodePort: nodePort %d, want one allocated in 30000-32767", port)
	}
	if np.Spec.ClusterIP != ip {
		t.Errorf("ClusterIP → NodePort changed the cluster IP %s → %s", ip, np.Spec.ClusterIP)
	}
	// The allocated port is reserved: another Service cannot take it.
	other := clusterIPService("other", "")
	other.Spec.Type = corev1.ServiceTypeNodePort
	other.Spec.Ports[0].NodePort = port
	if _, err := svcs.Create(ctx, other, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("second Service on node port %d: %v, want 422 already allocated", port, err)
	}

	back := patch(`{"spec":{"type":"ClusterIP"}}`)
	if got := back.Spec.Ports[0].NodePort; got != 0 {
		t.Errorf("NodePort → ClusterIP kept nodePort %d", got)
	}
	// Released: now the other Service may take it.
	if _, err := svcs.Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Errorf("node port %d not released: %v", port, err)
	}

	ext := patch(`{"spec":{"type":"ExternalName","externalName":"example.com"}}`)
	if ext.Spec.ClusterIP != "" || len(ext.Spec.ClusterIPs) != 0 {
		t.Errorf("→ ExternalName kept cluster IPs %v", ext.Spec.ClusterIPs)
	}
	if _, err := s.Client.NetworkingV1().IPAddresses().Get(ctx, ip, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("IPAddress %s after → ExternalName: %v, want it released", ip, err)
	}

	again := patch(`{"spec":{"type":"ClusterIP","externalName":null}}`)
	if again.Spec.ClusterIP == "" {
		t.Fatal("ExternalName → ClusterIP got no cluster IP")
	}
	wantIPAddress(t, s.Client, again.Spec.ClusterIP, "flip")
}
