package main

import (
	"flag"
	"runtime/debug"
	"testing"
)

func TestSetGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	cases := []struct {
		name string
		args []string
		gogc string // the environment's GOGC
		want int
	}{
		{"server default", nil, "", 50},
		{"flag given", []string{"--gc-percent", "80"}, "", 80},
		{"environment wins over the default", nil, "200", 100},
		{"flag wins over the environment", []string{"--gc-percent", "30"}, "200", 30},
		{"zero keeps Go's setting", []string{"--gc-percent", "0"}, "", 100},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("GOGC", c.gogc)
			debug.SetGCPercent(100) // stands for Go's own setting
			fs := flag.NewFlagSet("server", flag.ContinueOnError)
			percent := fs.Int("gc-percent", 50, "")
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			setGCPercent(fs, *percent)
			if got := debug.SetGCPercent(100); got != c.want {
				t.Errorf("GC percent %d, want %d", got, c.want)
			}
		})
	}
}
