package apiserver

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestReportedVerb(t *testing.T) {
	for _, tc := range []struct {
		method, url, contentType string
		want                     string
	}{
		{"GET", "/api/v1/namespaces/a/pods/p", "", "GET"},
		{"GET", "/api/v1/namespaces/a/pods", "", "LIST"},
		{"GET", "/api/v1/pods?watch=true", "", "WATCH"},
		{"GET", "/api/v1/pods?limit=5&watch=1", "", "WATCH"},
		{"GET", "/api/v1/pods?watch=false", "", "LIST"},
		{"GET", "/api/v1/pods?watch=0", "", "LIST"},
		{"POST", "/api/v1/namespaces/a/pods", "", "POST"},
		{"PUT", "/api/v1/namespaces/a/pods/p", "", "PUT"},
		{"PATCH", "/api/v1/namespaces/a/pods/p", "application/merge-patch+json", "PATCH"},
		{"PATCH", "/api/v1/namespaces/a/pods/p", "application/apply-patch+yaml", "APPLY"},
		{"DELETE", "/api/v1/namespaces/a/pods/p", "", "DELETE"},
		{"DELETE", "/api/v1/namespaces/a/pods", "", "DELETECOLLECTION"},
		{"POST", "/api/v1/namespaces/a/pods/p/exec?command=ls", "", "CONNECT"},
		{"GET", "/api/v1/namespaces/a/pods/p/proxy/x/y", "", "CONNECT"},
		{"GET", "/api/v1/namespaces/a/pods/p/log", "", "GET"},
	} {
		r := httptest.NewRequest(tc.method, tc.url, nil)
		if tc.contentType != "" {
			r.Header.Set("Content-Type", tc.contentType)
		}
		info, _ := parsePath(r.URL.Path)
		sub, _, connect := splitConnect(info)
		connect = connect && sub != "log"
		if got := reportedVerb(r, info, connect); got != tc.want {
			t.Errorf("%s %s: verb %q, want %q", tc.method, tc.url, got, tc.want)
		}
	}
}

func TestQueryValue(t *testing.T) {
	for _, tc := range []struct {
		q, key, want string
		ok           bool
	}{
		{"watch=true", "watch", "true", true},
		{"a=1&dryRun=All&b=2", "dryRun", "All", true},
		{"watchx=1", "watch", "", false},
		{"watch", "watch", "", true},
		{"", "watch", "", false},
	} {
		got, ok := queryValue(tc.q, tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("queryValue(%q, %q) = %q, %v; want %q, %v", tc.q, tc.key, got, ok, tc.want, tc.ok)
		}
	}
}

// The writer keeps the first final status and passes flushes on.
func TestStatusWriterRecordsCode(t *testing.T) {
	rec := httptest.NewRecorder()
	w := &statusWriter{ResponseWriter: rec}
	w.WriteHeader(http.StatusCreated)
	w.WriteHeader(http.StatusInternalServerError) // superfluous, ignored by net/http too
	w.Flush()
	if w.code != http.StatusCreated || !rec.Flushed {
		t.Errorf("code %d flushed %v; want 201 and flushed", w.code, rec.Flushed)
	}
	w2 := &statusWriter{ResponseWriter: httptest.NewRecorder()}
	_, _ = w2.Write([]byte("x"))
	if w2.code != http.StatusOK {
		t.Errorf("implicit status %d, want 200", w2.code)
	}
}
