package main

import (
	"flag"

	"github.com/skiff-dev/skiff/internal/cluster"
)

// flowControlFlags are the API Priority and Fairness flags `server` and
// `up` share, named and defaulted as kube-apiserver's.
type flowControlFlags struct {
	enabled     *bool
	maxInFlight *int
	maxMutating *int
}

func addFlowControlFlags(fs *flag.FlagSet) flowControlFlags {
	return flowControlFlags{
		enabled: fs.Bool("enable-priority-and-fairness", true,
			"classify requests by FlowSchemas and queue them fairly in their priority levels, rejecting the excess with 429"),
		maxInFlight: fs.Int("max-requests-inflight", 400,
			"with --max-mutating-requests-inflight, the requests the server executes at once, shared among the priority levels"),
		maxMutating: fs.Int("max-mutating-requests-inflight", 200,
			"added to --max-requests-inflight for the server's total concurrency limit"),
	}
}

// apply sets the flags' values in c.
func (f flowControlFlags) apply(c cluster.ServerConfig) cluster.ServerConfig {
	c.FlowControl.Enabled = *f.enabled
	c.FlowControl.MaxRequestsInFlight = *f.maxInFlight
	c.FlowControl.MaxMutatingRequestsInFlight = *f.maxMutating
	return c
}
