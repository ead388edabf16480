package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
)

// etcdWrites creates n pods bound to random nodes by writing them straight
// into the server's embedded etcd (its unix socket, named in
// DIR/etcd/client-url), from 64 writers. The API server's write path is
// skipped, so the rate the watchers see measures the watch cache alone.
func etcdWrites(ctx context.Context, dataDir string, nodes, n int) error {
	raw, err := os.ReadFile(filepath.Join(dataDir, "etcd", "client-url"))
	if err != nil {
		return fmt.Errorf("embedded etcd address: %w", err)
	}
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{strings.TrimSpace(string(raw))}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer client.Close()
	enc := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	var (
		seq   atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := seq.Add(1)
				if i > int64(n) {
					return
				}
				name := fmt.Sprintf("d-%06d", i)
				p := benchPod(name)
				p.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
				p.Namespace = "fanout"
				p.UID = types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i))
				p.CreationTimestamp = metav1.Now()
				p.Spec.NodeName = nodeName(rand.IntN(nodes))
				p.Annotations = map[string]string{sentAnnotation: strconv.FormatInt(time.Now().UnixNano(), 10)}
				err := putPod(ctx, client, enc, p)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func putPod(ctx context.Context, client *clientv3.Client, enc *protobuf.Serializer, p *corev1.Pod) error {
	var buf bytes.Buffer
	if err := enc.Encode(p, &buf); err != nil {
		return fmt.Errorf("encode pod: %w", err)
	}
	_, err := client.Put(ctx, "/registry/pods/"+p.Namespace+"/"+p.Name, buf.String())
	return err
}
