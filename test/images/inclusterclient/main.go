// Command inclusterclient is the end-to-end suite's in-cluster client: it
// authenticates as its pod's ServiceAccount exactly as operators do
// (rest.InClusterConfig: the mounted token and ca.crt, and
// KUBERNETES_SERVICE_HOST/PORT), then lists the pods of its own namespace
// once a second, printing one line per attempt:
//
//	OK <n> pods
//	ERR <status code> <reason>
//
// Errors that are not API statuses (TLS, connection) print code 0 and the
// error text. It stops after -duration so a forgotten pod does not run
// forever.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
)

const namespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

func main() {
	interval := flag.Duration("interval", time.Second, "time between attempts")
	duration := flag.Duration("duration", 10*time.Minute, "stop after this long")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	if err := run(ctx, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "inclusterclient:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, interval time.Duration) error {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return fmt.Errorf("in-cluster config: %w", err)
	}
	raw, err := os.ReadFile(namespaceFile)
	if err != nil {
		return fmt.Errorf("own namespace: %w", err)
	}
	ns := strings.TrimSpace(string(raw))
	cfg.Timeout = 10 * time.Second
	// client-go's authenticated transport (token file re-read as the
	// kubelet rotates it, the mounted CA) without a typed clientset, which
	// would add every API group to the image.
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	podsURL := strings.TrimSuffix(cfg.Host, "/") + "/api/v1/namespaces/" + url.PathEscape(ns) + "/pods"
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if n, err := listPods(ctx, client, podsURL); err != nil {
			fmt.Println(describe(err))
		} else {
			fmt.Printf("OK %d pods\n", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// listPods returns how many pods the list holds, or the API's error as
// client-go's typed clients would return it.
func listPods(ctx context.Context, client *http.Client, podsURL string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, podsURL, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		var status metav1.Status
		if json.Unmarshal(body, &status) == nil && status.Kind == "Status" {
			if status.Code == 0 {
				status.Code = int32(resp.StatusCode)
			}
			return 0, &apierrors.StatusError{ErrStatus: status}
		}
		return 0, apierrors.NewGenericServerResponse(resp.StatusCode, http.MethodGet,
			schema.GroupResource{Resource: "pods"}, "", string(body), 0, true)
	}
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return 0, fmt.Errorf("decode pod list: %w", err)
	}
	return len(list.Items), nil
}

// describe renders a failed attempt as "ERR <code> <reason>".
func describe(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Code != 0 {
		return fmt.Sprintf("ERR %d %s", status.Status().Code, apierrors.ReasonForError(err))
	}
	return fmt.Sprintf("ERR 0 %v", err)
}
