package differential

import (
	"reflect"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

const deploymentYAML = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, labels: {app: d}}
spec:
  replicas: 3
  paused: true
  selector: {matchLabels: {app: d}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 25%}
  template:
    metadata: {labels: {app: d}}
    spec:
      containers:
      - name: c
        image: busybox
        resources: {requests: {cpu: 100m}}
status: {replicas: 1}
`

func deploymentBase(t *testing.T) baseObject {
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(deploymentYAML), &obj); err != nil {
		t.Fatal(err)
	}
	return baseObject{gvk: schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, obj: obj, src: "test"}
}

func TestMutationsOfADeployment(t *testing.T) {
	b := deploymentBase(t)
	v, err := b.typed()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mutations(v.Elem(), nil, true) {
		names = append(names, m.String())
	}
	for _, want := range []string{
		"spec.replicas=-1",
		"spec.replicas=dropped",
		"spec.selector=dropped",
		"spec.strategy.type=Bogus",
		`spec.strategy.rollingUpdate.maxSurge="abc%"`,
		"spec.strategy.rollingUpdate.maxSurge=-1",
		"spec.template.spec.containers[0].name=Invalid_Value!",
		"spec.template.spec.containers[0].image=dropped",
		"spec.template.spec.containers[0].resources.requests.cpu=-1",
		"spec.template.spec.containers[0].resources.requests.cpu=abc",
		`metadata.labels={"bad key!": "v"}`,
		`spec.template.metadata.labels={"bad key!": "v"}`,
	} {
		if !slices.Contains(names, want) {
			t.Errorf("missing mutation %s", want)
		}
	}
	for _, unwanted := range []string{"status.replicas=-1", "spec.paused=dropped", "metadata.name=Invalid_Value!", "kind=Bogus"} {
		if slices.Contains(names, unwanted) {
			t.Errorf("unexpected mutation %s", unwanted)
		}
	}
	// Declaration order, so the corpus is the same on every run.
	if i, j := slices.Index(names, "spec.replicas=-1"), slices.Index(names, "spec.strategy.type=Bogus"); i > j {
		t.Errorf("mutations out of field order: %d > %d", i, j)
	}
}

func TestApply(t *testing.T) {
	b := deploymentBase(t)
	tests := []struct {
		m    mutation
		path []any
		want any
	}{
		{mutation{path: []any{"spec", "replicas"}, value: -1}, []any{"spec", "replicas"}, -1},
		{mutation{path: []any{"spec", "template", "spec", "containers", 0, "image"}, value: "Invalid_Value!"},
			[]any{"spec", "template", "spec", "containers", 0, "image"}, "Invalid_Value!"},
		{mutation{path: []any{"spec", "selector"}, value: dropField{}}, []any{"spec", "selector"}, nil},
	}
	for _, tt := range tests {
		got, err := apply(b.obj, tt.m)
		if err != nil {
			t.Fatal(err)
		}
		if v := lookup(got, tt.path); !reflect.DeepEqual(v, tt.want) {
			t.Errorf("%v: got %v, want %v", tt.m.path, v, tt.want)
		}
	}
	// The base object is left alone.
	if lookup(b.obj, []any{"spec", "selector"}) == nil {
		t.Error("apply changed the base object")
	}
}

func lookup(v any, path []any) any {
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[p]
		case int:
			l, _ := v.([]any)
			if p >= len(l) {
				return nil
			}
			v = l[p]
		}
	}
	return v
}

func TestNormalise(t *testing.T) {
	tests := []struct{ in, want string }{
		{`Operation cannot be fulfilled on pods "p": the object has been modified; resourceVersion: 123`,
			`Operation cannot be fulfilled on pods "p": the object has been modified; resourceVersion <rv>`},
		{"uid 0b9d5c1e-3f1a-4c2b-9d8e-0123456789ab differs", "uid <uid> differs"},
		{"at 2026-12-01T02:20:43Z via https://127.0.0.1:6443", "at <time> via <host>"},
		{`spec.strategy: Unsupported value: {"Type":"Bogus","RollingUpdate":{"MaxSurge":{}}}: supported values: "Recreate"`,
			`spec.strategy: Unsupported value: <object>: supported values: "Recreate"`},
		{`a: Invalid value: {"A":1}: x, b: Invalid value: {"B":{}}: y`, `a: Invalid value: <object>: x, b: Invalid value: <object>: y`},
		{`Invalid value: {"unterminated"`, `Invalid value: {"unterminated"`},
		{"spec: Forbidden: spec is immutable\n@@ -10,7 +10,7 @@\n-  a\n+  b\n", "spec: Forbidden: spec is immutable"},
	}
	for _, tt := range tests {
		if got := normalise(tt.in); got != tt.want {
			t.Errorf("normalise(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestCorpusCoversTheIssue keeps every case issue 15 lists in the corpus.
func TestCorpusCoversTheIssue(t *testing.T) {
	names := map[string]bool{}
	for _, c := range loadCorpus(t) {
		names[c.Name] = true
		if _, err := c.encode(); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
	for _, want := range []string{
		"deployment/maxsurge-abc-percent", "deployment/strategy-bogus", "deployment/maxsurge-and-maxunavailable-zero",
		"cronjob/bogus-schedule", "cronjob/time-zone-mars", "job/completion-mode-bogus",
		"pdb/min-available-abc-percent", "node/pod-cidr-garbage", "node/internal-ip-not-an-ip",
		"service/external-ips-garbage", "pod/cpu-request-negative", "configmap/1.2MB", "object/2.5MB-event",
		"object/2.5MB-event-left-nothing-behind", "deployment/scale-empty-object", "deployment/scale-null",
		"request/dry-run-bogus", "request/list-limit-abc", "request/list-timeout-seconds-abc",
		"deployment/put-body-names-another-object", "eviction/without-name",
	} {
		if !names[want] {
			t.Errorf("corpus lacks case %s", want)
		}
	}
	loadAllowlist(t)
}
