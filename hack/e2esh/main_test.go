package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEnvKeepsNonIdentifierNames runs the built shell as the env specs do.
func TestEnvKeepsNonIdentifierNames(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sh")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-c", "env")
	cmd.Env = append(os.Environ(), "data-1=value-1", "$_-data-1=value-2")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"data-1=value-1", "$_-data-1=value-2"} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("sh -c env printed no %q:\n%s", want, out)
		}
	}
}
