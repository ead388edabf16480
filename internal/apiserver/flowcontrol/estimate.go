package flowcontrol

import (
	"math"
	"strconv"
	"time"
)

// Upstream's work estimator constants for a LIST.
const (
	objectsPerSeat = 100
	minSeats       = 1
	maxSeats       = 10
	// maxSeatsFraction of a queuing level's nominal seats bound a request's
	// seats there (upstream's priorityLevelMaxSeatsPercent).
	maxSeatsFraction = 0.15
)

// ListSeats is upstream's work estimate of a LIST of a resource holding
// count objects, with the request's limit query parameter: one seat per
// hundred objects it returns, between 1 and 10. Skiff serves every LIST
// from the watch cache, so resourceVersion=0 or not, a LIST costs the
// objects it returns (limit honoured). An unparsable limit costs the
// maximum: the request will fail validation, as upstream.
func ListSeats(count int, limit string) int {
	n := int64(count)
	if limit != "" {
		l, err := strconv.ParseInt(limit, 10, 64)
		if err != nil {
			return maxSeats
		}
		if l > 0 && l < n {
			n = l
		}
	}
	seats := int(math.Ceil(float64(n) / objectsPerSeat))
	return max(minSeats, min(seats, maxSeats))
}

// levelMaxSeats is the most seats one request may take in a level with
// the given nominal seats: max(1, min(15% of nominal, nominal / hand
// size)) for queuing levels, else upstream's cap of 10.
func levelMaxSeats(nominal int, q queuing) int {
	if q.queues == 0 || q.handSize <= 0 {
		return maxSeats
	}
	s := int(math.Max(1, math.Min(math.Ceil(float64(nominal)*maxSeatsFraction), float64(nominal/q.handSize))))
	return min(s, maxSeats)
}

// WatchSeats is upstream's work estimate of a WATCH, which holds its seats
// only until it has sent its initial events: with sendInitialEvents, those
// are the resource's count objects, so it costs a LIST of them from the
// cache (no limit applies); otherwise one seat, as upstream, which does not
// charge the legacy initial events of an unset or "0" resourceVersion.
func WatchSeats(count int, sendInitialEvents bool) int {
	if !sendInitialEvents {
		return minSeats
	}
	return ListSeats(count, "")
}

// Upstream's mutating work estimator constants: a write's watch events
// cost a seat per ten watchers they reach, for 5 ms after the write ends.
const (
	watchesPerSeat          = 10
	eventAdditionalDuration = 5 * time.Millisecond
)

// mutatingFinalSeats is upstream's estimate of the work a write leaves
// behind, its watch events to the given number of watchers: one seat per
// ten, held for eventAdditionalDuration once the write is done. Below ten
// watchers a write costs nothing more, as upstream.
func mutatingFinalSeats(watchers int) int {
	if watchers < watchesPerSeat {
		return 0
	}
	return int(math.Ceil(float64(watchers) / watchesPerSeat))
}

// finalHold is how long a write that left final seats of work keeps the
// granted seats its level allows: upstream reshapes the work (final seats
// for 5 ms) into a narrower, longer rectangle of the same area when the
// level's cap on one request's seats is below final.
func finalHold(final, granted int) time.Duration {
	if final <= 0 || granted <= 0 {
		return 0
	}
	return eventAdditionalDuration * time.Duration(final) / time.Duration(granted)
}

// IsWrite reports whether an API verb changes objects, so that the write
// notifies watchers.
func IsWrite(verb string) bool {
	switch verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}
