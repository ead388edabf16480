package differential

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
)

// answer is what the comparison looks at in a response.
type answer struct {
	Code    int
	Kind    string
	Reason  string
	Message string
	Causes  []string
}

func (a answer) String() string {
	s := fmt.Sprintf("%d %s", a.Code, a.Kind)
	if a.Reason != "" {
		s += " reason=" + a.Reason
	}
	if a.Message != "" {
		s += fmt.Sprintf(" message=%q", a.Message)
	}
	for _, c := range a.Causes {
		s += "\n        cause " + c
	}
	return s
}

// volatile are the parts of messages that differ between any two servers.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "<uid>"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`), "<time>"},
	{regexp.MustCompile(`(https?://)?127\.0\.0\.1:\d+`), "<host>"},
	{regexp.MustCompile(`resourceVersion[=: "]+\d+`), "resourceVersion <rv>"},
	// Upstream appends a diff of its internal objects to some Forbidden
	// messages (e.g. immutable specs); only the text before it compares.
	{regexp.MustCompile(`(?s)\n@@ .*`), ""},
}

func normalise(s string) string {
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.with)
	}
	return elideObjects(s)
}

// elideObjects replaces the objects printed after "value: " with
// <object>: upstream prints its internal Go types there (field names like
// "RollingUpdate"), which no other implementation can reproduce.
func elideObjects(s string) string {
	const marker = "value: {"
	var b strings.Builder
	for {
		i := strings.Index(s, marker)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		start := i + len(marker) - 1
		depth, end := 0, -1
		for j := start; j < len(s) && end < 0; j++ {
			switch s[j] {
			case '{':
				depth++
			case '}':
				if depth--; depth == 0 {
					end = j + 1
				}
			}
		}
		if end < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:start])
		b.WriteString("<object>")
		s = s[end:]
	}
}

// encode builds the request body.
func (r request) encode() ([]byte, error) {
	if r.RawBody != nil {
		return []byte(*r.RawBody), nil
	}
	if r.Body == nil {
		return nil, nil
	}
	data, err := json.Marshal(r.Body)
	if err != nil || r.Fill == nil {
		return data, err
	}
	// Fill a copy: the case may be sent again.
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("fill needs an object body: %w", err)
	}
	setPath(m, strings.Split(r.Fill.Path, "."), strings.Repeat("x", r.Fill.Bytes))
	return json.Marshal(m)
}

func setPath(m map[string]any, p []string, v any) {
	for _, k := range p[:len(p)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[p[len(p)-1]] = v
}

// do sends r to e and extracts the answer.
func (e *endpoint) do(r request) (answer, error) {
	body, err := r.encode()
	if err != nil {
		return answer{}, err
	}
	return e.send(r, body)
}

// send sends r with the encoded body.
func (e *endpoint) send(r request, body []byte) (answer, error) {
	req, err := e.newRequest(r.Method, r.Path, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		ct := r.ContentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s %s: %w", e.name, r.Method, r.Path, err)
	}
	defer resp.Body.Close()
	a := answer{Code: resp.StatusCode}
	if resp.StatusCode == http.StatusOK && strings.Contains(r.Path, "watch=") {
		// A watch that was accepted streams until its timeout.
		a.Kind = "<watch stream>"
		return a, nil
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s %s: read: %w", e.name, r.Method, r.Path, err)
	}
	var st struct {
		Kind    string `json:"kind"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
		Details struct {
			Causes []struct {
				Type    string `json:"reason"`
				Message string `json:"message"`
				Field   string `json:"field"`
			} `json:"causes"`
		} `json:"details"`
	}
	if json.Unmarshal(data, &st) != nil {
		a.Kind = "<not json>"
		return a, nil
	}
	a.Kind = st.Kind
	if st.Kind != "Status" {
		return a, nil
	}
	a.Reason, a.Message = st.Reason, normalise(st.Message)
	for _, c := range st.Details.Causes {
		a.Causes = append(a.Causes, fmt.Sprintf("%s %s: %s", c.Field, c.Type, normalise(c.Message)))
	}
	// Upstream's order of causes follows its validation order; the
	// comparison is about the set.
	sort.Strings(a.Causes)
	return a, nil
}

// both sends r to the two servers at once.
func both(up, sk *endpoint, r request) (au, as answer, err error) {
	body, err := r.encode()
	if err != nil {
		return au, as, err
	}
	var wg sync.WaitGroup
	var errU, errS error
	wg.Go(func() { au, errU = up.send(r, body) })
	wg.Go(func() { as, errS = sk.send(r, body) })
	wg.Wait()
	if errU != nil {
		return au, as, errU
	}
	return au, as, errS
}

func sameAnswer(a, b answer) bool {
	return a.Code == b.Code && a.Kind == b.Kind && a.Reason == b.Reason && a.Message == b.Message &&
		slices.Equal(a.Causes, b.Causes)
}
