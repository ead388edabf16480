package e2e

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// extNS is the namespace TestExtension works in.
const extNS = "ext-e2e"

// widgetCRD is the suite's CustomResourceDefinition: every schema feature
// users lean on (required, enum, pattern, minimum, defaults, a CEL rule
// with a message, descriptions for kubectl explain), printer columns, short
// names, the "all" category, and the status and scale subresources. The
// operator (test/images/operator) reconciles it.
const widgetCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.e2e.skiff.dev
spec:
  group: e2e.skiff.dev
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    listKind: WidgetList
    shortNames: [wd]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.size
        statusReplicasPath: .status.observedSize
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Observed, type: integer, jsonPath: .status.observedSize}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        description: A Widget is the end-to-end suite's custom resource.
        required: [spec]
        properties:
          spec:
            type: object
            description: What the user wants of the Widget.
            required: [size]
            x-kubernetes-validations:
            - rule: "self.color != 'red' || self.size <= 5"
              message: a red widget has at most 5 parts
            properties:
              size:
                type: integer
                minimum: 0
                description: How many parts the Widget has.
              color:
                type: string
                enum: [red, green, blue]
                default: blue
              serial:
                type: string
                pattern: '^[A-Z]{2}-[0-9]{4}$'
          status:
            type: object
            properties:
              observedSize: {type: integer}
              observedGeneration: {type: integer}
              conditions:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [type]
                items:
                  type: object
                  required: [type, status]
                  properties:
                    type: {type: string}
                    status: {type: string}
                    reason: {type: string}
                    message: {type: string}
                    lastTransitionTime: {type: string, format: date-time}
                    observedGeneration: {type: integer}
`

// TestExtension proves API extension as a user meets it, on one `skiff up`
// node with real kubectl: a CRD with a full schema, an operator built with
// controller-runtime, an admission webhook, server-side apply, a Helm 4
// chart, and a ValidatingAdmissionPolicy.
func TestExtension(t *testing.T) {
	c := startNodeCluster(t, "--cni-bridge", "skiffe2e11", "--cluster-cidr", "10.65.0.0/16",
		"--dns-port", strconv.Itoa(freePort(t)),
		"--ingress-http-port", strconv.Itoa(freePort(t)), "--ingress-https-port", strconv.Itoa(freePort(t)))
	k := c.kubectl()
	nk := kubectl{t: t, bin: k.bin, kubeconfig: derivedKubeconfig(t, c.kubeconfig, extNS, false)}
	k.must("create", "namespace", extNS)
	waitFor(t, func() bool { _, err := nk.run("", "get", "serviceaccount", "default"); return err == nil },
		"the default ServiceAccount in a new namespace")

	// The steps share the cluster and run in order: the operator
	// reconciles the CRD of the first step.
	step := func(name string, fn func(*testing.T, kubectl)) {
		t.Run(name, func(t *testing.T) {
			nk := nk
			nk.t = t
			fn(t, nk)
		})
	}
	step("custom resource definition", testCustomResources)
	step("operator", testOperator)
	step("admission webhook", func(t *testing.T, k kubectl) { testAdmissionWebhook(t, k) })
	step("server-side apply", testServerSideApply)
	step("helm", func(t *testing.T, k kubectl) { testHelm(t, k, c.kubeconfig) })
	step("validating admission policy", testAdmissionPolicy)
}

// testCustomResources: the CRD is established and served (discovery, short
// name, category, printer columns, explain); its schema defaults, prunes
// and refuses what upstream refuses, with upstream's messages; the scale
// subresource answers kubectl scale.
func testCustomResources(t *testing.T, k kubectl) {
	applyYAML(k, widgetCRD)
	k.must("wait", "--for", "condition=established", "--timeout", "60s", "crd/widgets.e2e.skiff.dev")
	// api-resources refreshes kubectl's discovery cache, so `get all`
	// below sees the new category member.
	contains(t, k.must("api-resources", "--api-group", "e2e.skiff.dev", "-o", "wide"),
		"widgets", "wd", "e2e.skiff.dev/v1", "true", "Widget", "all")

	applyYAML(k, `
apiVersion: e2e.skiff.dev/v1
kind: Widget
metadata: {name: small}
spec: {size: 2}
---
apiVersion: e2e.skiff.dev/v1
kind: Widget
metadata: {name: red}
spec: {size: 3, color: red, serial: AB-1234}
`)
	if got := k.must("get", "widget", "small", "-o", "jsonpath={.spec.color}"); got != "blue" {
		t.Errorf("defaulted spec.color = %q, want blue", got)
	}
	table := k.must("get", "wd")
	contains(t, table, "NAME", "SIZE", "COLOR", "OBSERVED", "AGE")
	if !tableRow(table, "red", "3", "red") || !tableRow(table, "small", "2", "blue") {
		t.Errorf("kubectl get wd lacks the printer columns' values:\n%s", table)
	}
	contains(t, k.must("get", "all"), "widget.e2e.skiff.dev/small", "widget.e2e.skiff.dev/red")
	contains(t, k.must("explain", "widget.spec"), "What the user wants of the Widget",
		"How many parts the Widget has", "-required-", "enum: red, green, blue")

	for _, tc := range []struct {
		name, spec string
		wants      []string
	}{
		{"cel", `{size: 6, color: red}`, []string{"a red widget has at most 5 parts"}},
		{"enum", `{size: 1, color: purple}`, []string{`spec.color`, `Unsupported value: "purple"`, `"red", "green", "blue"`}},
		{"pattern", `{size: 1, serial: bad}`, []string{`spec.serial`, `should match '^[A-Z]{2}-[0-9]{4}$'`}},
		{"required", `{color: green}`, []string{`spec.size`, `Required value`}},
		{"minimum", `{size: -1}`, []string{`spec.size`, `should be greater than or equal to 0`}},
	} {
		out, err := k.run(widgetYAML("bad-"+tc.name, tc.spec), "create", "-f", "-")
		if err == nil {
			t.Errorf("%s: widget with spec %s accepted", tc.name, tc.spec)
			continue
		}
		contains(t, out, append([]string{`is invalid`}, tc.wants...)...)
	}

	// Unknown fields: refused with strict validation, pruned without.
	out, err := k.run(widgetYAML("unknown", `{size: 1, bogus: true}`), "create", "--validate=strict", "-f", "-")
	if err == nil {
		t.Error("--validate=strict accepted an unknown field")
	} else {
		contains(t, out, `unknown field "spec.bogus"`)
	}
	k.mustStdin(widgetYAML("pruned", `{size: 1, bogus: true}`), "create", "--validate=false", "-f", "-")
	if spec := k.must("get", "widget", "pruned", "-o", "jsonpath={.spec}"); strings.Contains(spec, "bogus") {
		t.Errorf("unknown field kept: spec %s", spec)
	}

	// The scale subresource maps replicas onto spec.size.
	contains(t, k.must("scale", "widget", "small", "--replicas", "4"), "scaled")
	if got := k.must("get", "widget", "small", "-o", "jsonpath={.spec.size}"); got != "4" {
		t.Errorf("spec.size after kubectl scale = %q, want 4", got)
	}
	var scale struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
		Spec       struct {
			Replicas int `json:"replicas"`
		} `json:"spec"`
	}
	raw := k.must("get", "--raw", "/apis/e2e.skiff.dev/v1/namespaces/"+extNS+"/widgets/small/scale")
	if err := json.Unmarshal([]byte(raw), &scale); err != nil || scale.Kind != "Scale" || scale.APIVersion != "autoscaling/v1" || scale.Spec.Replicas != 4 {
		t.Errorf("scale subresource: %v %s", err, raw)
	}
}

func widgetYAML(name, spec string) string {
	return "apiVersion: e2e.skiff.dev/v1\nkind: Widget\nmetadata: {name: " + name + "}\nspec: " + spec + "\n"
}

// tableRow reports whether a line of kubectl's table output starts with
// the given cells, in order.
func tableRow(table string, cells ...string) bool {
	for line := range strings.SplitSeq(table, "\n") {
		f := strings.Fields(line)
		if len(f) >= len(cells) && strings.Join(f[:len(cells)], " ") == strings.Join(cells, " ") {
			return true
		}
	}
	return false
}

// operatorYAML runs test/images/operator with the rights it needs, and no
// more: its custom resource and status, ConfigMaps, events and leases.
const operatorYAML = `
apiVersion: v1
kind: ServiceAccount
metadata: {name: widget-operator, namespace: ` + extNS + `}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-widget-operator}
rules:
- apiGroups: [e2e.skiff.dev]
  resources: [widgets]
  verbs: [get, list, watch, update, patch]
- apiGroups: [e2e.skiff.dev]
  resources: [widgets/status]
  verbs: [get, update, patch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch, update]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-widget-operator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-widget-operator}
subjects:
- {kind: ServiceAccount, name: widget-operator, namespace: ` + extNS + `}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: widget-operator, namespace: ` + extNS + `}
spec:
  replicas: 1
  selector: {matchLabels: {app: widget-operator}}
  template:
    metadata: {labels: {app: widget-operator}}
    spec:
      serviceAccountName: widget-operator
      terminationGracePeriodSeconds: 5
      containers:
      - name: operator
        image: skiff.test/operator:latest
        imagePullPolicy: Never
        readinessProbe:
          httpGet: {path: /readyz, port: 8081}
          periodSeconds: 2
`

// testOperator: a controller-runtime operator in a pod keeps a Widget's
// ConfigMap and status in step with its spec, and the garbage collector
// removes the ConfigMap with the Widget.
func testOperator(t *testing.T, k kubectl) {
	applyYAML(k, operatorYAML)
	if out, err := k.run("", "rollout", "status", "deployment/widget-operator", "--timeout", "120s"); err != nil {
		logs, _ := k.run("", "logs", "deployment/widget-operator", "--tail", "50")
		t.Fatalf("operator not available: %v\n%s\nlogs:\n%s", err, out, logs)
	}
	applyYAML(k, widgetYAML("managed", "{size: 3}"))
	cmSize := func() string {
		out, _ := k.run("", "get", "configmap", "managed-widget", "-o", "jsonpath={.data.size}")
		return out
	}
	waitUntil(t, 60*time.Second, "the operator's ConfigMap with size 3", func() bool { return cmSize() == "3" })
	waitUntil(t, 60*time.Second, "status.observedSize 3", func() bool {
		out, _ := k.run("", "get", "widget", "managed", "-o", "jsonpath={.status.observedSize}")
		return out == "3"
	})
	owner := k.must("get", "configmap", "managed-widget", "-o",
		`jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}/{.metadata.ownerReferences[0].controller}/{.metadata.ownerReferences[0].uid}`)
	uid := k.must("get", "widget", "managed", "-o", "jsonpath={.metadata.uid}")
	if want := "Widget/managed/true/" + uid; owner != want {
		t.Errorf("ConfigMap owner %q, want %q", owner, want)
	}
	if got := k.must("get", "widget", "managed", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`); got != "True" {
		t.Errorf("Ready condition %q, want True", got)
	}
	// The new column shows the operator's status.
	if table := k.must("get", "wd", "managed"); !tableRow(table, "managed", "3", "blue", "3") {
		t.Errorf("printer columns after reconcile:\n%s", table)
	}

	k.must("patch", "widget", "managed", "--type", "merge", "-p", `{"spec":{"size":5}}`)
	waitUntil(t, 60*time.Second, "the ConfigMap following size 5", func() bool { return cmSize() == "5" })

	k.must("delete", "widget", "managed")
	// Upstream's collector sees a new resource within its 30s discovery
	// resync and checks an owner it never observed with the API.
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err := k.run("", "get", "configmap", "managed-widget", "-o", "yaml")
		if err != nil && strings.Contains(out, "NotFound") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the garbage collector left the ConfigMap of a deleted Widget for 90s:\n%s", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitUntil polls cond every 500ms, failing the test after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
