// Command e2esh is /bin/sh in the conformance suite's busybox stand-in.
//
// Debian's busybox 1.35 shell drops environment variables whose names are
// not identifiers (a ConfigMap key such as "data-1") before it runs a
// command; upstream's busybox 1.37, which the suite's image carries, passes
// them on, and the ConfigMap and Secret env specs print them with
// `sh -c env`. e2esh runs that one command itself, printing the
// environment as env does, and hands every other invocation to busybox's
// shell unchanged, so its messages stay busybox's.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

func main() {
	args := os.Args[1:]
	if len(args) == 2 && args[0] == "-c" && strings.TrimSpace(args[1]) == "env" {
		for _, kv := range os.Environ() {
			fmt.Println(kv)
		}
		return
	}
	// busybox picks the applet by argv[0]'s base name: "sh".
	err := syscall.Exec("/bin/busybox", os.Args, os.Environ())
	fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[0], err)
	os.Exit(127)
}
