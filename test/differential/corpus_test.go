package differential

import (
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// request is one HTTP request of the corpus.
type request struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	// ContentType defaults to application/json when there is a body.
	ContentType string `json:"contentType,omitempty"`
	// Body is encoded as JSON; RawBody is sent as is (e.g. "null").
	Body    any     `json:"body,omitempty"`
	RawBody *string `json:"rawBody,omitempty"`
	// Fill pads a string field of Body, for size limits.
	Fill *fill `json:"fill,omitempty"`
}

// fill sets the string at dotted Path in the body to Bytes bytes.
type fill struct {
	Path  string `json:"path"`
	Bytes int    `json:"bytes"`
}

// corpusCase is a request sent to both servers, after setup requests that
// must succeed on both.
type corpusCase struct {
	Name    string    `json:"name"`
	Setup   []request `json:"setup,omitempty"`
	request `json:",inline"`
}

// corpusFile is one testdata file: a few cases about one kind or rule.
type corpusFile struct {
	Cases []corpusCase `json:"cases"`
}

// allowEntry tolerates a difference in the cases whose name matches Case
// (a path.Match pattern); every entry needs a reason.
type allowEntry struct {
	Case   string `json:"case"`
	Reason string `json:"reason"`
}

// outcome is the result of one case.
type outcome struct {
	name     string
	differs  string // empty when both agree
	upstream answer
}

// runCase runs c's setup and request on both servers.
func runCase(up, sk *endpoint, c corpusCase) outcome {
	for i, s := range c.Setup {
		au, as, err := both(up, sk, s)
		if err != nil {
			return outcome{name: c.Name, differs: fmt.Sprintf("setup %d: %v", i, err)}
		}
		if au.Code >= 300 || as.Code >= 300 {
			return outcome{name: c.Name, differs: fmt.Sprintf("setup %d (%s %s) failed:\n    upstream: %s\n    skiff:    %s",
				i, s.Method, s.Path, au, as)}
		}
	}
	au, as, err := both(up, sk, c.request)
	if err != nil {
		return outcome{name: c.Name, differs: err.Error()}
	}
	if sameAnswer(au, as) {
		return outcome{name: c.Name, upstream: au}
	}
	return outcome{name: c.Name, upstream: au,
		differs: fmt.Sprintf("%s %s\n    upstream: %s\n    skiff:    %s", c.Method, c.Path, au, as)}
}

// loadCorpus reads every testdata/corpus/*.yaml file, in name order.
func loadCorpus(t *testing.T) []corpusCase {
	files, err := filepath.Glob(filepath.Join("testdata", "corpus", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	sort.Strings(files)
	var cases []corpusCase
	seen := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cf corpusFile
		if err := yaml.UnmarshalStrict(data, &cf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, c := range cf.Cases {
			if c.Name == "" || c.Method == "" || c.Path == "" || seen[c.Name] {
				t.Fatalf("%s: case %q needs a unique name, a method and a path", f, c.Name)
			}
			seen[c.Name] = true
			cases = append(cases, c)
		}
	}
	return cases
}

func loadAllowlist(t *testing.T) []allowEntry {
	data, err := os.ReadFile(filepath.Join("testdata", "allowlist.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Allow []allowEntry `json:"allow"`
	}
	if err := yaml.UnmarshalStrict(data, &l); err != nil {
		t.Fatalf("allowlist: %v", err)
	}
	for _, a := range l.Allow {
		if _, err := path.Match(a.Case, ""); err != nil || a.Reason == "" {
			t.Fatalf("allowlist entry %q needs a valid pattern and a reason", a.Case)
		}
	}
	return l.Allow
}

func allowed(list []allowEntry, name string) bool {
	for _, a := range list {
		if ok, _ := path.Match(a.Case, name); ok {
			return true
		}
	}
	return false
}

// prepare creates the namespace the corpus uses, and its default
// ServiceAccount (upstream's ServiceAccount admission needs it, and no
// controller runs next to the upstream API server to create it).
func prepare(t *testing.T, up, sk *endpoint) {
	for _, r := range []request{
		{Method: "POST", Path: "/api/v1/namespaces", Body: map[string]any{"metadata": map[string]any{"name": "diff"}}},
		{Method: "POST", Path: "/api/v1/namespaces/diff/serviceaccounts", Body: map[string]any{"metadata": map[string]any{"name": "default"}}},
	} {
		for _, e := range []*endpoint{up, sk} {
			a, err := e.do(r)
			if err != nil {
				t.Fatal(err)
			}
			if a.Code >= 300 && a.Code != http.StatusConflict {
				t.Fatalf("%s %s %s: %s", e.name, r.Method, r.Path, a)
			}
		}
	}
}

// summarise logs and reports the outcomes and fails on differences that
// the allowlist does not cover.
func summarise(t *testing.T, section string, outcomes []outcome, allow []allowEntry, rep *reporter) {
	var diffs, tolerated []string
	for _, o := range outcomes {
		if o.differs == "" {
			continue
		}
		line := o.name + ": " + o.differs
		if allowed(allow, o.name) {
			tolerated = append(tolerated, line)
		} else {
			diffs = append(diffs, line)
		}
	}
	t.Logf("%s: %d cases, %d agree, %d differ (%d more allowlisted)",
		section, len(outcomes), len(outcomes)-len(diffs)-len(tolerated), len(diffs), len(tolerated))
	rep.section(section, len(outcomes), len(tolerated), diffs)
	if len(diffs) > 0 {
		t.Errorf("%d cases differ:\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
}

func testCorpus(t *testing.T, up, sk *endpoint, rep *reporter) {
	var outcomes []outcome
	for _, c := range loadCorpus(t) {
		outcomes = append(outcomes, runCase(up, sk, c))
	}
	summarise(t, "corpus", outcomes, loadAllowlist(t), rep)
}
