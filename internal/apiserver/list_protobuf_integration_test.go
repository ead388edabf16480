package apiserver_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/internal/testserver"
)

const protobufMedia = "application/vnd.kubernetes.protobuf"

func TestProtobufListServedByTypedClient(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	if _, err := s.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "pb"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%d", i), Labels: map[string]string{"odd": fmt.Sprint(i%2 == 1)}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox", Args: []string{"sleep", fmt.Sprint(i)}}}},
		}
		if _, err := s.Client.CoreV1().Pods("pb").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := rest.CopyConfig(s.Config)
	cfg.ContentType, cfg.AcceptContentTypes = protobufMedia, protobufMedia
	pbClient := kubernetes.NewForConfigOrDie(cfg)

	for _, opts := range []metav1.ListOptions{{}, {ResourceVersion: "0"}, {LabelSelector: "odd=true"}} {
		want, err := s.Client.CoreV1().Pods("pb").List(ctx, opts) // JSON
		if err != nil {
			t.Fatal(err)
		}
		got, err := pbClient.CoreV1().Pods("pb").List(ctx, opts)
		if err != nil {
			t.Fatalf("protobuf list %+v: %v", opts, err)
		}
		if got.ResourceVersion == "" || len(got.Items) == 0 || !equality.Semantic.DeepEqual(got.Items, want.Items) {
			t.Errorf("list %+v: protobuf rv %q items %d, json items %d", opts, got.ResourceVersion, len(got.Items), len(want.Items))
		}
	}

	// The body is exactly what the protobuf serializer makes of the list it
	// decodes to, empty lists included.
	pb := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	for _, path := range []string{"/api/v1/namespaces/pb/pods", "/api/v1/namespaces/none/pods?resourceVersion=0", "/api/v1/pods"} {
		req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
		req.Header.Set("Accept", protobufMedia)
		code, body, ct := doRaw(t, req)
		if code != http.StatusOK || ct != protobufMedia {
			t.Fatalf("%s: %d %s %q", path, code, ct, body)
		}
		obj, _, err := pb.Decode(body, nil, &corev1.PodList{})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		obj.GetObjectKind().SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
		var again bytes.Buffer
		if err := pb.Encode(obj, &again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, again.Bytes()) {
			t.Errorf("%s: served bytes differ from the serializer's encoding of the same list", path)
		}
		if l := obj.(*corev1.PodList); strings.Contains(path, "none") != (len(l.Items) == 0) {
			t.Errorf("%s: %d items", path, len(l.Items))
		}
	}

	// Custom resources still have no protobuf form.
	createEstablished(t, s, widgetCRD())
	if code, body, _ := rawGet(t, s.URL+"/apis/example.com/v1/namespaces/default/widgets", protobufMedia); code != http.StatusNotAcceptable {
		t.Errorf("protobuf list of custom objects: %d %s", code, body)
	}
	if code, body, _ := rawGet(t, s.URL+"/apis/example.com/v1/namespaces/default/widgets", protobufMedia+",application/json"); code != http.StatusOK || !strings.Contains(body, `"kind":"WidgetList"`) {
		t.Errorf("protobuf-or-json list of custom objects: %d %s", code, body)
	}
}

func doRaw(t *testing.T, req *http.Request) (int, []byte, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b.Bytes(), resp.Header.Get("Content-Type")
}
