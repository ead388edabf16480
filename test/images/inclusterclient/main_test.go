package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestListPodsReportsAsTheE2ESuiteReadsIt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"allowed", 200, `{"kind":"PodList","items":[{},{}]}`, "OK 2"},
		{"forbidden", 403, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}`, "ERR 403 Forbidden"},
		{"unauthorized", 401, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}`, "ERR 401 Unauthorized"},
		{"not a status", 502, `bad gateway`, "ERR 502 InternalError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/v1/namespaces/ns/pods" {
					t.Errorf("path %s", r.URL.Path)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			n, err := listPods(context.Background(), srv.Client(), srv.URL+"/api/v1/namespaces/ns/pods")
			got := "OK " + string(rune('0'+n))
			if err != nil {
				got = describe(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
