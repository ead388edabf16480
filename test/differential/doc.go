// Package differential compares Skiff's API server with an upstream
// kube-apiserver v1.37.2 built from the test-only module test/upstream:
// discovery, and the answers (status code, reason, causes) to a corpus of
// valid and invalid requests. It also runs upstream's kube-scheduler against
// Skiff. The tests are skipped unless SKIFF_UPSTREAM_BIN names the directory
// holding the upstream binaries (make upstream builds them into
// bin/upstream; make differential runs the tests).
package differential
