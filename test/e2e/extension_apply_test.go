package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// managedFieldsJSON is the part of metadata.managedFields the tests read.
type managedFieldsJSON []struct {
	Manager   string          `json:"manager"`
	Operation string          `json:"operation"`
	FieldsV1  json.RawMessage `json:"fieldsV1"`
}

func managedFields(t *testing.T, k kubectl, args ...string) managedFieldsJSON {
	t.Helper()
	var mf managedFieldsJSON
	out := k.must(append(args, "-o", "jsonpath={.metadata.managedFields}", "--show-managed-fields")...)
	if err := json.Unmarshal([]byte(out), &mf); err != nil {
		t.Fatalf("managedFields %q: %v", out, err)
	}
	return mf
}

// owns reports whether manager holds an entry with operation that owns
// every one of fields (fieldsV1 keys such as `"f:key"`).
func (mf managedFieldsJSON) owns(manager, operation string, fields ...string) bool {
	for _, e := range mf {
		if e.Manager != manager || e.Operation != operation {
			continue
		}
		if !slices.ContainsFunc(fields, func(f string) bool { return !strings.Contains(string(e.FieldsV1), f) }) {
			return true
		}
	}
	return false
}

func ssaConfigMap(data string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: " + data + "\n"
}

// testServerSideApply: two field managers applying the same key conflict
// (naming the owner) until one forces; managedFields record both, as
// upstream; an object made with client-side apply moves to server-side
// apply without a conflict.
func testServerSideApply(t *testing.T, k kubectl) {
	k.mustStdin(ssaConfigMap("{key: one, other: a}"), "apply", "--server-side", "--field-manager", "a", "-f", "-")
	out, err := k.run(ssaConfigMap("{key: two}"), "apply", "--server-side", "--field-manager", "b", "-f", "-")
	if err == nil {
		t.Fatal("manager b took .data.key from manager a without --force-conflicts")
	}
	contains(t, out, "Apply failed with 1 conflict", `conflict with "a"`, ".data.key")
	k.mustStdin(ssaConfigMap("{key: two}"), "apply", "--server-side", "--field-manager", "b", "--force-conflicts", "-f", "-")
	if got := k.must("get", "configmap", "ssa", "-o", "jsonpath={.data.key}/{.data.other}"); got != "two/a" {
		t.Errorf("data after the forced apply = %q, want two/a", got)
	}
	mf := managedFields(t, k, "get", "configmap", "ssa")
	if !mf.owns("a", "Apply", `"f:other"`) || mf.owns("a", "Apply", `"f:key"`) || !mf.owns("b", "Apply", `"f:key"`) {
		t.Errorf("managedFields after the forced apply: a should own .data.other only, b .data.key; got %s", jsonString(mf))
	}
	yaml := k.must("get", "configmap", "ssa", "-o", "yaml", "--show-managed-fields")
	contains(t, yaml, "managedFields:", "manager: a", "manager: b", "operation: Apply", "fieldsType: FieldsV1", "f:data:", "f:key: {}", "f:other: {}")

	// Client-side apply, then server-side apply of a changed value with
	// kubectl's default manager: kubectl moves the client-side manager's
	// fields to its own, so there is no conflict.
	csa := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: csa}\ndata: {k: v1}\n"
	k.mustStdin(csa, "apply", "-f", "-")
	if mf := managedFields(t, k, "get", "configmap", "csa"); !mf.owns("kubectl-client-side-apply", "Update", `"f:k"`) {
		t.Errorf("client-side apply's managedFields: %s", jsonString(mf))
	}
	out, err = k.run(strings.Replace(csa, "v1}", "v2}", 1), "apply", "--server-side", "-f", "-")
	if err != nil {
		t.Fatalf("server-side apply over client-side apply: %v\n%s", err, out)
	}
	if got := k.must("get", "configmap", "csa", "-o", "jsonpath={.data.k}"); got != "v2" {
		t.Errorf("data.k = %q, want v2", got)
	}
	if mf := managedFields(t, k, "get", "configmap", "csa"); !mf.owns("kubectl", "Apply", `"f:k"`) || mf.owns("kubectl-client-side-apply", "Update", `"f:k"`) {
		t.Errorf("managedFields after the migration: kubectl should own .data.k by Apply; got %s", jsonString(mf))
	}
}

// helmBin returns SKIFF_HELM, or bin/helm (make bin/helm), or builds Helm
// from the test-only module test/helm.
func helmBin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("SKIFF_HELM"); b != "" {
		return b
	}
	if b, err := filepath.Abs("../../bin/helm"); err == nil {
		if _, err := os.Stat(b); err == nil {
			return b
		}
	}
	bin := filepath.Join(t.TempDir(), "helm")
	cmd := exec.Command("go", "build", "-o", bin, "helm.sh/helm/v4/cmd/helm")
	cmd.Dir = "../../test/helm"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build helm: %v\n%s", err, out)
	}
	return bin
}

// testHelm: Helm 4 installs a chart whose crds/ holds a CRD and whose
// template is a custom resource of it, with server-side apply (its
// default); uninstalling removes the resource and, as Helm documents,
// keeps the CRD.
func testHelm(t *testing.T, k kubectl, kubeconfig string) {
	home := t.TempDir()
	helm := func(args ...string) (string, error) {
		cmd := exec.Command(helmBin(t), append(args, "--kubeconfig", kubeconfig, "--namespace", extNS)...)
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
			"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := helm("install", "gadgets", "testdata/chart", "--timeout", "2m"); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	if got := k.must("get", "gadget", "helm-gadget", "-o", "jsonpath={.spec.flavour}"); got != "vanilla" {
		t.Errorf("the chart's Gadget has flavour %q, want vanilla", got)
	}
	if mf := managedFields(t, k, "get", "gadget", "helm-gadget"); !mf.owns("helm", "Apply", `"f:flavour"`) {
		t.Errorf("the chart's Gadget was not server-side applied by helm: %s", jsonString(mf))
	}
	k.must("get", "crd", "gadgets.e2e.skiff.dev")
	out, err := helm("list", "-o", "json")
	if err != nil {
		t.Fatalf("helm list: %v\n%s", err, out)
	}
	var releases []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &releases); err != nil || len(releases) != 1 ||
		releases[0].Name != "gadgets" || releases[0].Status != "deployed" {
		t.Errorf("helm list: %v %s", err, out)
	}

	if out, err := helm("uninstall", "gadgets", "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	waitUntil(t, 60*time.Second, "the chart's Gadget gone", func() bool {
		out, err := k.run("", "get", "gadget", "helm-gadget")
		return err != nil && strings.Contains(out, "NotFound")
	})
	k.must("get", "crd", "gadgets.e2e.skiff.dev")
}
