package e2e

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

const (
	// guardedNS is the only namespace the webhook watches, so scaling it
	// to zero with failurePolicy Fail blocks nothing else.
	guardedNS = "ext-e2e-guarded"
	// webhookDenial is what test/images/webhook answers for a labelled
	// object.
	webhookDenial  = "skiff e2e webhook: objects labelled e2e.skiff.dev/deny=true are not allowed"
	webhookName    = "deny-label.e2e.skiff.dev"
	webhookTimeout = 5 * time.Second
)

// webhookYAML runs test/images/webhook behind a Service, serving the
// certificate of the Secret e2e-webhook-tls.
const webhookYAML = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: e2e-webhook, namespace: ` + extNS + `}
spec:
  replicas: 1
  selector: {matchLabels: {app: e2e-webhook}}
  template:
    metadata: {labels: {app: e2e-webhook}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: webhook
        image: skiff.test/webhook:latest
        imagePullPolicy: Never
        args: [-tls-cert-file, /tls/tls.crt, -tls-key-file, /tls/tls.key]
        ports: [{containerPort: 8443}]
        readinessProbe:
          httpGet: {path: /healthz, port: 8443, scheme: HTTPS}
          periodSeconds: 2
        volumeMounts: [{name: tls, mountPath: /tls, readOnly: true}]
      volumes:
      - name: tls
        secret: {secretName: e2e-webhook-tls}
---
apiVersion: v1
kind: Service
metadata: {name: e2e-webhook, namespace: ` + extNS + `}
spec:
  selector: {app: e2e-webhook}
  ports: [{port: 443, targetPort: 8443}]
`

// testAdmissionWebhook: a ValidatingWebhookConfiguration sends ConfigMap
// writes of the guarded namespace to a webhook Service, trusting the CA of
// its caBundle; the webhook's denial reaches kubectl with its message, and
// with failurePolicy Fail an unreachable webhook refuses within its
// timeout.
func testAdmissionWebhook(t *testing.T, k kubectl) {
	host := "e2e-webhook." + extNS + ".svc"
	caPEM, certFile, keyFile := webhookCerts(t, host)
	k.must("create", "secret", "tls", "e2e-webhook-tls", "--cert", certFile, "--key", keyFile)
	applyYAML(k, webhookYAML)
	if out, err := k.run("", "rollout", "status", "deployment/e2e-webhook", "--timeout", "120s"); err != nil {
		logs, _ := k.run("", "logs", "deployment/e2e-webhook", "--tail", "50")
		t.Fatalf("webhook not available: %v\n%s\nlogs:\n%s", err, out, logs)
	}
	k.must("create", "namespace", guardedNS)
	k.must("label", "namespace", guardedNS, "e2e.skiff.dev/webhook=enabled")
	t.Cleanup(func() {
		_, _ = k.run("", "delete", "validatingwebhookconfiguration", "e2e-deny-label", "--ignore-not-found")
	})
	applyYAML(k, fmt.Sprintf(`
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: e2e-deny-label}
webhooks:
- name: %s
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: %d
  clientConfig:
    service: {namespace: %s, name: e2e-webhook, path: /validate, port: 443}
    caBundle: %s
  rules:
  - apiGroups: [""]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [configmaps]
  namespaceSelector:
    matchLabels: {e2e.skiff.dev/webhook: enabled}
`, webhookName, int(webhookTimeout.Seconds()), extNS, base64.StdEncoding.EncodeToString(caPEM)))

	// Upstream's API server picks up a new configuration within about a
	// second; until then a labelled ConfigMap may still get in.
	out := refusedEventually(t, k, "the webhook denying a labelled ConfigMap", func(attempt int) string {
		return fmt.Sprintf(`
apiVersion: v1
kind: ConfigMap
metadata: {name: denied-%d, namespace: %s, labels: {e2e.skiff.dev/deny: "true"}}
data: {k: v}
`, attempt, guardedNS)
	})
	contains(t, out, `admission webhook "`+webhookName+`" denied the request`, webhookDenial)
	k.must("create", "configmap", "allowed", "-n", guardedNS, "--from-literal=k=v")
	// Elsewhere the webhook is not asked.
	k.must("create", "configmap", "elsewhere", "--from-literal=k=v")
	k.must("label", "configmap", "elsewhere", "e2e.skiff.dev/deny=true")

	// No webhook pod: every ConfigMap write in the namespace fails, and
	// fails within the webhook's timeout.
	k.must("scale", "deployment", "e2e-webhook", "--replicas", "0")
	waitUntil(t, 60*time.Second, "the webhook's pods gone", func() bool {
		out, err := k.run("", "get", "pods", "-l", "app=e2e-webhook", "-o", "name")
		return err == nil && strings.TrimSpace(out) == ""
	})
	start := time.Now()
	out, err := k.run("", "create", "configmap", "unreachable", "-n", guardedNS, "--from-literal=k=v")
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("ConfigMap accepted with the failurePolicy Fail webhook down")
	}
	contains(t, out, `failed calling webhook "`+webhookName+`"`)
	if limit := webhookTimeout + 5*time.Second; elapsed >= limit {
		t.Errorf("refusal took %s, want < %s", elapsed, limit)
	}
}

// refusedEventually creates manifest(attempt), a new object each time,
// until the server refuses it, for admission configuration that takes
// effect asynchronously; an object that got in is deleted again. It
// returns the refusal's output.
func refusedEventually(t *testing.T, k kubectl, what string, manifest func(attempt int) string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; ; attempt++ {
		m := manifest(attempt)
		out, err := k.run(m, "create", "-f", "-")
		if err != nil {
			return out
		}
		_, _ = k.run(m, "delete", "-f", "-", "--wait=false")
		if time.Now().After(deadline) {
			t.Fatalf("%s: still accepted after 30s", what)
		}
		time.Sleep(time.Second)
	}
}

// testAdmissionPolicy: a ValidatingAdmissionPolicy's CEL rule, bound to
// the test's namespace, refuses a Deployment over the limit with the
// policy's message and lets one at the limit through.
func testAdmissionPolicy(t *testing.T, k kubectl) {
	const msg = "e2e policy: a Deployment may have at most 5 replicas"
	t.Cleanup(func() {
		_, _ = k.run("", "delete", "validatingadmissionpolicybinding", "e2e-max-replicas", "--ignore-not-found")
		_, _ = k.run("", "delete", "validatingadmissionpolicy", "e2e-max-replicas", "--ignore-not-found")
	})
	applyYAML(k, `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: e2e-max-replicas}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [apps]
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [deployments]
  validations:
  - expression: "object.spec.replicas <= 5"
    message: "`+msg+`"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: e2e-max-replicas}
spec:
  policyName: e2e-max-replicas
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: `+extNS+`}
`)
	out := refusedEventually(t, k, "the policy refusing 6 replicas", func(attempt int) string {
		return deploymentYAML(fmt.Sprintf("big-%d", attempt), 6)
	})
	contains(t, out, `ValidatingAdmissionPolicy 'e2e-max-replicas' with binding 'e2e-max-replicas' denied request`, msg)
	// At the limit it is allowed (a server dry run: admission runs, its
	// pods need not).
	k.mustStdin(deploymentYAML("five", 5), "create", "--dry-run=server", "-f", "-")
	// The policy matches updates too.
	out, err := k.run("", "patch", "deployment", "widget-operator", "--dry-run=server", "-p", `{"spec":{"replicas":6}}`)
	if err == nil {
		t.Error("an update to 6 replicas was allowed; the policy covers UPDATE")
	} else {
		contains(t, out, msg)
	}
}

func deploymentYAML(name string, replicas int) string {
	return fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: %s}
spec:
  replicas: %d
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec:
      containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
`, name, replicas, name, name)
}
