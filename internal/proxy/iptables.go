package proxy

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Runner applies iptables changes; tests substitute a fake.
type Runner interface {
	// Save returns iptables-save output for one table.
	Save(ctx context.Context, table string) ([]byte, error)
	// Restore applies iptables-restore input without flushing other chains.
	Restore(ctx context.Context, data []byte) error
	// Insert adds a rule at the top of a built-in chain; Delete removes it.
	Insert(ctx context.Context, table, chain, rule string) error
	Delete(ctx context.Context, table, chain, rule string) error
	// DeleteConntrack removes UDP flows to serviceIP answered by endpointIP.
	DeleteConntrack(ctx context.Context, serviceIP, endpointIP string) error
}

// ExecRunner runs the iptables binaries, optionally prefixed (e.g. with
// `ip netns exec NAME` in tests).
type ExecRunner struct {
	Prefix []string
}

func (r ExecRunner) run(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	argv := append(append([]string{}, r.Prefix...), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (r ExecRunner) Save(ctx context.Context, table string) ([]byte, error) {
	return r.run(ctx, nil, "iptables-save", "-t", table)
}

func (r ExecRunner) Restore(ctx context.Context, data []byte) error {
	_, err := r.run(ctx, data, "iptables-restore", "--noflush", "-w", "5")
	return err
}

func (r ExecRunner) Insert(ctx context.Context, table, chain, rule string) error {
	_, err := r.run(ctx, nil, append([]string{"iptables", "-w", "5", "-t", table, "-I", chain, "1"}, splitRule(rule)...)...)
	return err
}

func (r ExecRunner) Delete(ctx context.Context, table, chain, rule string) error {
	_, err := r.run(ctx, nil, append([]string{"iptables", "-w", "5", "-t", table, "-D", chain}, splitRule(rule)...)...)
	return err
}

func (r ExecRunner) DeleteConntrack(ctx context.Context, serviceIP, endpointIP string) error {
	_, err := r.run(ctx, nil, "conntrack", "-D", "-p", "udp", "--orig-dst", serviceIP, "--reply-src", endpointIP)
	if err != nil && strings.Contains(err.Error(), "0 flow entries") {
		return nil
	}
	return err
}

// splitRule splits a rule into arguments, keeping quoted comments whole.
func splitRule(rule string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range rule {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ' ' && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}
