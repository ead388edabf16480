package apiserver

import "time"

// SetRequestTimeout shortens the deadline of non-long-running requests for
// a test; the returned function restores it.
func SetRequestTimeout(d time.Duration) (restore func()) {
	old := requestTimeout
	requestTimeout = d
	return func() { requestTimeout = old }
}
