// Command webhook is the end-to-end suite's validating admission webhook:
// an HTTPS server (certificate and key read from files, mounted from a
// Secret) answering AdmissionReview v1 on /validate. It denies any object
// labelled e2e.skiff.dev/deny=true, with denyMessage, and allows everything
// else. /healthz answers 200 for the readiness probe.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	denyLabel = "e2e.skiff.dev/deny"
	// denyMessage is what the API server must pass on to the client.
	denyMessage = "skiff e2e webhook: objects labelled " + denyLabel + "=true are not allowed"
	// maxBody bounds a review; the API server's own limit is 3 MiB objects.
	maxBody = 8 << 20
)

func main() {
	addr := flag.String("addr", ":8443", "HTTPS listen address")
	cert := flag.String("tls-cert-file", "/tls/tls.crt", "serving certificate (PEM)")
	key := flag.String("tls-key-file", "/tls/tls.key", "serving key (PEM)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := serve(ctx, *addr, *cert, *key); err != nil {
		slog.Error("webhook", "err", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, addr, cert, key string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /validate", validate)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServeTLS(cert, key) }()
	slog.Info("serving", "addr", addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			return err
		}
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// validate answers one AdmissionReview: the response carries the request's
// uid, as the API server requires.
func validate(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&review); err != nil {
		http.Error(w, "decode AdmissionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	if review.Request == nil {
		http.Error(w, "AdmissionReview without a request", http.StatusBadRequest)
		return
	}
	resp := decide(review.Request)
	slog.Info("review", "uid", review.Request.UID, "kind", review.Request.Kind.Kind,
		"namespace", review.Request.Namespace, "name", review.Request.Name, "operation", review.Request.Operation, "allowed", resp.Allowed)
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	if out.APIVersion == "" {
		out.APIVersion, out.Kind = "admission.k8s.io/v1", "AdmissionReview"
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		slog.Error("write response", "err", err)
	}
}

// decide denies an object carrying the deny label (on DELETE, the old
// object's labels count) and allows anything else.
func decide(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	raw := req.Object.Raw
	if len(raw) == 0 {
		raw = req.OldObject.Raw
	}
	if len(raw) == 0 {
		return resp
	}
	var obj metav1.PartialObjectMetadata
	if err := json.Unmarshal(raw, &obj); err != nil {
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusBadRequest,
			Reason: metav1.StatusReasonBadRequest, Message: fmt.Sprintf("skiff e2e webhook: decode object: %v", err)}
		return resp
	}
	if obj.Labels[denyLabel] == "true" {
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden,
			Reason: metav1.StatusReasonForbidden, Message: denyMessage}
	}
	return resp
}
