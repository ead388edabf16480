package csi

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

func TestRegistrationPublishesNodeInfoAndDeregistrationRemovesIt(t *testing.T) {
	env := newRegisteredEnv(t, false)
	ctx := t.Context()

	cn, err := env.client.StorageV1().CSINodes().Get(ctx, testNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if refs := cn.OwnerReferences; len(refs) != 1 || refs[0].Kind != "Node" || refs[0].Name != testNode || refs[0].UID != "node-uid" {
		t.Errorf("owner references = %+v, want the Node", refs)
	}
	if len(cn.Spec.Drivers) != 1 {
		t.Fatalf("drivers = %+v, want one", cn.Spec.Drivers)
	}
	d := cn.Spec.Drivers[0]
	if d.Name != testDriver || d.NodeID != "id-"+testNode || !slices.Equal(d.TopologyKeys, []string{"topology.example.com/zone"}) {
		t.Errorf("driver entry = %+v", d)
	}
	if d.Allocatable == nil || d.Allocatable.Count == nil || *d.Allocatable.Count != 7 {
		t.Errorf("allocatable = %+v, want count 7", d.Allocatable)
	}
	node, err := env.client.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if node.Labels["topology.example.com/zone"] != "z1" {
		t.Errorf("node labels = %v, want the driver's topology", node.Labels)
	}
	if got := node.Annotations[nodeIDAnnotation]; got != `{"`+testDriver+`":"id-`+testNode+`"}` {
		t.Errorf("node ID annotation = %q", got)
	}
	if got := env.m.Registered(); !slices.Equal(got, []string{testDriver}) {
		t.Errorf("registered = %v", got)
	}

	env.reg.stop()
	env.m.watcher.sync(ctx)
	cn, err = env.client.StorageV1().CSINodes().Get(ctx, testNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cn.Spec.Drivers) != 0 {
		t.Errorf("drivers after deregistration = %+v, want none", cn.Spec.Drivers)
	}
	node, _ = env.client.CoreV1().Nodes().Get(ctx, testNode, metav1.GetOptions{})
	if _, ok := node.Annotations[nodeIDAnnotation]; ok {
		t.Errorf("node ID annotation left after deregistration: %v", node.Annotations)
	}
	if got := env.m.Registered(); len(got) != 0 {
		t.Errorf("registered after socket removal = %v", got)
	}
}

func TestRunCreatesCSINodeAndRegistersSockets(t *testing.T) {
	env := newRegisteredEnv(t, false)
	env.reg.stop()
	env.m.watcher.sync(t.Context())
	if err := env.client.StorageV1().CSINodes().Delete(t.Context(), testNode, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); env.m.Run(ctx) }()
	defer func() { cancel(); <-done }()

	reg := startRegistrar(t, env.m.RegistryDir(), csiPluginInfo(startDriver(t, env.node)))
	if s := <-reg.status; !s.PluginRegistered {
		t.Fatalf("registration failed: %s", s.Error)
	}
	cn, err := env.client.StorageV1().CSINodes().Get(ctx, testNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cn.Spec.Drivers) != 1 || cn.Spec.Drivers[0].Name != testDriver {
		t.Errorf("drivers = %+v", cn.Spec.Drivers)
	}
}

func TestRegistrationRefusesOtherPluginTypesOnce(t *testing.T) {
	env := newRegisteredEnv(t, false)
	other := startRegistrar(t, env.m.RegistryDir(), &registerapi.PluginInfo{
		Type: registerapi.DevicePlugin, Name: "example.com/gpu", SupportedVersions: []string{"v1beta1"},
	})
	env.m.watcher.sync(t.Context())
	if s := <-other.status; s.PluginRegistered || !strings.Contains(s.Error, "DevicePlugin") {
		t.Errorf("status = %+v, want a refusal naming the type", s)
	}
	env.m.watcher.sync(t.Context())
	env.m.watcher.sockets[other.socket].nextTry = time.Time{} // past any retry delay
	env.m.watcher.sync(t.Context())
	if len(other.status) != 0 {
		t.Errorf("a refused plugin was asked again")
	}
	cn, _ := env.client.StorageV1().CSINodes().Get(t.Context(), testNode, metav1.GetOptions{})
	if len(cn.Spec.Drivers) != 1 || cn.Spec.Drivers[0].Name != testDriver {
		t.Errorf("drivers = %+v, want only the CSI driver", cn.Spec.Drivers)
	}
}
