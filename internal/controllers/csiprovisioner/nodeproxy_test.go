package csiprovisioner

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestNodeProxyCallsTheKubeletThroughTheAPIServer serves the API server's
// node proxy path and checks what the client sends and how it reads the
// answers: a volume, the driver's own error, a routing error.
func TestNodeProxyCallsTheKubeletThroughTheAPIServer(t *testing.T) {
	var gotPath string
	var gotReq csipb.CreateVolumeRequest
	answer := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		out, _ := protojson.Marshal(&csipb.CreateVolumeResponse{Volume: &csipb.Volume{VolumeId: "h1", CapacityBytes: 5}})
		_, _ = w.Write(out)
	}
	writeStatus := func(w http.ResponseWriter, s metav1.Status) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(s.Code))
		s.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
		_ = json.NewEncoder(w).Encode(&s)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath = r.Method + " " + r.URL.Path
		body, _ := io.ReadAll(r.Body)
		switch {
		case strings.HasSuffix(r.URL.Path, "/getCapacity"):
			w.Header().Set("Content-Type", "application/json")
			out, _ := protojson.Marshal(&csipb.GetCapacityResponse{AvailableCapacity: 7})
			_, _ = w.Write(out)
		case strings.HasPrefix(r.URL.Path, "/api/v1/nodes/n1/"):
			if err := protojson.Unmarshal(body, &gotReq); err != nil {
				t.Errorf("body %s: %v", body, err)
			}
			answer(w)
		case strings.HasPrefix(r.URL.Path, "/api/v1/nodes/n2/"):
			writeStatus(w, metav1.Status{Status: metav1.StatusFailure, Code: 429, Reason: metav1.StatusReasonTooManyRequests,
				Message: "CSI driver d: createVolume: code = ResourceExhausted desc = full",
				Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: statusCauseCSICode, Field: "8", Message: "full"}}}})
		default:
			writeStatus(w, metav1.Status{Status: metav1.StatusFailure, Code: 404, Reason: metav1.StatusReasonNotFound,
				Message: "driver name d not found in the list of registered CSI drivers"})
		}
	}))
	defer srv.Close()
	client, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	p := NodeProxy{REST: client.CoreV1().RESTClient()}

	resp, err := p.CreateVolume(t.Context(), "n1", "d.example.com", &csipb.CreateVolumeRequest{Name: "pvc-1",
		CapacityRange: &csipb.CapacityRange{RequiredBytes: 5}, Parameters: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if gotPath != "POST /api/v1/nodes/n1/proxy/csi/d.example.com/controller/createVolume" {
		t.Errorf("path = %s", gotPath)
	}
	if gotReq.Name != "pvc-1" || gotReq.CapacityRange.GetRequiredBytes() != 5 || gotReq.Parameters["a"] != "b" {
		t.Errorf("request = %v", &gotReq)
	}
	if resp.GetVolume().GetVolumeId() != "h1" || resp.GetVolume().GetCapacityBytes() != 5 {
		t.Errorf("response = %v", resp)
	}

	_, err = p.CreateVolume(t.Context(), "n2", "d.example.com", &csipb.CreateVolumeRequest{Name: "pvc-1"})
	if st, ok := status.FromError(err); !ok || st.Code() != codes.ResourceExhausted || st.Message() != "full" || !isDriverError(err) {
		t.Errorf("driver error = %v, want ResourceExhausted: full", err)
	}
	err = p.DeleteVolume(t.Context(), "n3", "d.example.com", &csipb.DeleteVolumeRequest{VolumeId: "h1"})
	if err == nil || isDriverError(err) || !strings.Contains(err.Error(), "not found in the list of registered CSI drivers") {
		t.Errorf("routing error = %v, want a non-driver error", err)
	}
	if gotPath != "POST /api/v1/nodes/n3/proxy/csi/d.example.com/controller/deleteVolume" {
		t.Errorf("path = %s", gotPath)
	}
	capResp, err := p.GetCapacity(t.Context(), "n1", "d.example.com", &csipb.GetCapacityRequest{})
	if err != nil || capResp.GetAvailableCapacity() != 7 {
		t.Errorf("GetCapacity = %v, %v", capResp, err)
	}
	if gotPath != "POST /api/v1/nodes/n1/proxy/csi/d.example.com/controller/getCapacity" {
		t.Errorf("path = %s", gotPath)
	}
}
