// Command storage measures the claim binding path of Skiff's controller
// manager: 100 claims on the default local-path class, each with the
// scheduler's selected-node annotation already set (the bench plays the
// scheduler), from creation to all Bound (provisioned by the local-path
// provisioner, bound by the PersistentVolume controller). It prints
// claims/s and the slowest claim's time to Bound.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/bench/internal/benchserver"
)

func main() {
	bin := flag.String("skiff", "bin/skiff", "path of the skiff binary")
	claims := flag.Int("claims", 100, "claims to bind")
	flag.Parse()
	if err := run(*bin, *claims); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(bin string, n int) error {
	srv, err := benchserver.Start(bin, "--log-level", "error", "--disable-scheduler")
	if err != nil {
		return err
	}
	defer srv.Close()
	c := srv.Clients(1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The provisioner creates the default class at start.
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := c.StorageV1().StorageClasses().Get(ctx, "local-path", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for StorageClass local-path: %w", err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bench-node", Labels: map[string]string{"kubernetes.io/hostname": "bench-node"}}}
	if _, err := c.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return err
	}

	w, err := c.CoreV1().PersistentVolumeClaims("default").Watch(ctx, metav1.ListOptions{LabelSelector: "bench=storage"})
	if err != nil {
		return err
	}
	defer w.Stop()
	created := make(map[string]time.Time, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("claim-%03d", i)
		created[name] = time.Now()
		if _, err := c.CoreV1().PersistentVolumeClaims("default").Create(ctx, benchClaim(name), metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	var slowest time.Duration
	bound := map[string]bool{}
	for len(bound) < n {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return fmt.Errorf("watch closed with %d of %d claims bound", len(bound), n)
			}
			pvc, isClaim := ev.Object.(*corev1.PersistentVolumeClaim)
			if !isClaim || ev.Type == watch.Deleted || pvc.Status.Phase != corev1.ClaimBound || bound[pvc.Name] {
				continue
			}
			bound[pvc.Name] = true
			if d := time.Since(created[pvc.Name]); d > slowest {
				slowest = d
			}
		case <-ctx.Done():
			return fmt.Errorf("%d of %d claims bound before the deadline", len(bound), n)
		}
	}
	elapsed := time.Since(start)
	fmt.Printf("storage: %d claims bound in %v: %.0f claims/s; slowest claim Bound %v after its creation\n",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), slowest.Round(time.Millisecond))

	// One claim on a quiet cluster: the latency a pod sees after its
	// scheduling.
	start = time.Now()
	if _, err := c.CoreV1().PersistentVolumeClaims("default").Create(ctx, benchClaim("lone"), metav1.CreateOptions{}); err != nil {
		return err
	}
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return fmt.Errorf("watch closed before the lone claim was bound")
			}
			if pvc, isClaim := ev.Object.(*corev1.PersistentVolumeClaim); isClaim && pvc.Name == "lone" && pvc.Status.Phase == corev1.ClaimBound {
				fmt.Printf("storage: a lone claim Bound %v after its creation (node already selected)\n", time.Since(start).Round(time.Millisecond))
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("lone claim not bound before the deadline")
		}
	}
}

// benchClaim is a 1Gi claim on local-path whose node the scheduler has
// already chosen.
func benchClaim(name string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bench": "storage"},
			Annotations: map[string]string{"volume.kubernetes.io/selected-node": "bench-node"}},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To("local-path"),
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
}
