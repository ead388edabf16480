// Command controllers measures Skiff's controller manager through the API:
// how long a Deployment of 1,000 replicas takes to have all its pods
// created, and how fast the ReplicaSet controller converges many
// ReplicaSets (reconciles per second).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/bench/internal/benchserver"
)

func main() {
	bin := flag.String("skiff", "bin/skiff", "path of the skiff binary")
	replicas := flag.Int("replicas", 1000, "replicas of the deployment")
	sets := flag.Int("replicasets", 500, "replica sets for the reconcile-rate run")
	flag.Parse()
	if err := run(*bin, *replicas, *sets); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(bin string, replicas, nSets int) error {
	// No scheduler: pods stay pending, which is all the controllers need.
	srv, err := benchserver.Start(bin, "--log-level", "error", "--disable-scheduler")
	if err != nil {
		return err
	}
	defer srv.Close()
	c := srv.Clients(1)[0]
	ctx := context.Background()

	// Deployment of N replicas: time from create to the last pod created.
	w, err := c.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "app=big"})
	if err != nil {
		return err
	}
	n := int32(replicas)
	labels := map[string]string{"app": "big"}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "big"}, Spec: appsv1.DeploymentSpec{
		Replicas: &n, Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.35"}}}},
	}}
	start := time.Now()
	if _, err := c.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return err
	}
	seen := 0
	timeout := time.After(5 * time.Minute)
	for seen < replicas {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return fmt.Errorf("watch closed after %d pods", seen)
			}
			if ev.Type == watch.Added {
				seen++
			}
		case <-timeout:
			return fmt.Errorf("only %d of %d pods after 5 minutes", seen, replicas)
		}
	}
	w.Stop()
	elapsed := time.Since(start)
	fmt.Printf("deployment of %d replicas: all pods created in %s (%.0f pods/s)\n", replicas, elapsed.Round(time.Millisecond), float64(replicas)/elapsed.Seconds())

	// Many small replica sets: each converges after a few reconciles
	// (create its pods, then record status).
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "rs"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	rw, err := c.AppsV1().ReplicaSets("rs").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	var created atomic.Int64
	start = time.Now()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			two := int32(2)
			for i := g; i < nSets; i += 16 {
				name := fmt.Sprintf("rs-%04d", i)
				lbl := map[string]string{"set": name}
				_, err := c.AppsV1().ReplicaSets("rs").Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name},
					Spec: appsv1.ReplicaSetSpec{Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: lbl},
						Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbl},
							Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.35"}}}}}}, metav1.CreateOptions{})
				if err == nil {
					created.Add(1)
				}
			}
		}(g)
	}
	converged := map[string]bool{}
	timeout = time.After(5 * time.Minute)
	for len(converged) < nSets {
		select {
		case ev, ok := <-rw.ResultChan():
			if !ok {
				return fmt.Errorf("watch closed")
			}
			if rs, ok := ev.Object.(*appsv1.ReplicaSet); ok && rs.Status.Replicas == 2 && rs.Status.ObservedGeneration == rs.Generation {
				converged[rs.Name] = true
			}
		case <-timeout:
			return fmt.Errorf("only %d of %d replica sets converged", len(converged), nSets)
		}
	}
	wg.Wait()
	elapsed = time.Since(start)
	// Each set needs at least two reconciles: one creating its pods, one
	// recording their count once the informer has seen them.
	fmt.Printf("%d replica sets of 2 pods converged in %s: %.0f sets/s, >= %.0f reconciles/s\n",
		nSets, elapsed.Round(time.Millisecond), float64(nSets)/elapsed.Seconds(), 2*float64(nSets)/elapsed.Seconds())
	return nil
}
