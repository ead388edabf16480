package differential

import (
	"context"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/testserver"
)

// TestUpstreamScheduler runs upstream's kube-scheduler, with its default
// configuration, against Skiff: it binds a pod only when every informer it
// starts (CSI, storage capacity, resource.k8s.io, ...) can list and watch.
func TestUpstreamScheduler(t *testing.T) {
	bin := binDir(t)
	// The scheduler runs as system:kube-scheduler under RBAC, so it gets
	// only what Skiff's default policy grants upstream's scheduler.
	users := map[string]*authn.User{
		"admin":     {Name: "admin", Groups: []string{"system:masters", "system:authenticated"}},
		"scheduler": {Name: "system:kube-scheduler", Groups: []string{"system:authenticated"}},
	}
	s := testserver.StartWith(t, testserver.Options{
		AccessControl: true,
		Authenticator: authn.NewBearerToken(func(tok string) (*authn.User, bool) { u, ok := users[tok]; return u, ok }),
	})
	client := s.ClientWithToken("admin")
	ctx := t.Context()

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"kubernetes.io/hostname": "n1"}}}
	node, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"),
		corev1.ResourcePods: resource.MustParse("110"),
	}
	node.Status = corev1.NodeStatus{
		Capacity: res, Allocatable: res,
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(), Reason: "KubeletReady"}},
	}
	node, err = client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Admission tainted the new node not-ready (TaintNodesByCondition); no
	// node lifecycle controller runs here to lift it once Ready, so do as
	// it would.
	node.Spec.Taints = nil
	if _, err := client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// client-go sends bearer tokens only over TLS: serve the same API
	// server over HTTPS for the scheduler.
	hs := httptest.NewTLSServer(s.API)
	t.Cleanup(hs.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw})

	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "scheduler.kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["skiff"] = &clientcmdapi.Cluster{Server: hs.URL, CertificateAuthorityData: ca}
	cfg.AuthInfos["scheduler"] = &clientcmdapi.AuthInfo{Token: "scheduler"}
	cfg.Contexts["skiff"] = &clientcmdapi.Context{Cluster: "skiff", AuthInfo: "scheduler"}
	cfg.CurrentContext = "skiff"
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "kube-scheduler.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// Only the kubeconfig and a free port differ from the defaults (10259
	// may be taken on a shared machine).
	sctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(sctx, filepath.Join(bin, "kube-scheduler"),
		"--kubeconfig", kubeconfig, "--secure-port", strconv.Itoa(freePorts(t, 1)[0]))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// No controller manager runs to create the ServiceAccount that
	// admission wants for the pod.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "default"}}
	if _, err := client.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p1", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}},
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		p, err := client.CoreV1().Pods("default").Get(ctx, "p1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeName == "n1" {
			return
		}
		select {
		case <-done:
			t.Fatalf("kube-scheduler exited:\n%s", schedulerLog(logPath))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod not bound after 90 s (nodeName %q); kube-scheduler log:\n%s", p.Spec.NodeName, schedulerLog(logPath))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func schedulerLog(path string) []byte {
	b, _ := os.ReadFile(path)
	return tail(b, 6000)
}
