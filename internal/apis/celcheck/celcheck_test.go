package celcheck

import (
	"strings"
	"testing"
)

func TestDeviceSelector(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want string // substring of the refusal; "" = accepted
	}{
		{`device.driver == "gpu.example.com"`, ""},
		{`device.attributes["gpu.example.com"].model == "a100"`, ""},
		{``, "compilation failed: ERROR: <input>:1:0: Syntax error: mismatched input '<EOF>'"},
		{`Invalid_Value!`, "compilation failed: ERROR: <input>:1:14: Syntax error: extraneous input '!' expecting <EOF>"},
		{`nodevice.driver == "x"`, "undeclared reference to 'nodevice'"},
		{`"just a string"`, "must evaluate to bool"},
	} {
		got := DeviceSelector(tc.expr)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("DeviceSelector(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}
