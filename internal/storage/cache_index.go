package storage

// watcherIndex groups a cache's watchers by the field their selector pins
// with an equality (spec.nodeName=N, metadata.name=X), so that an event is
// offered only to the watchers it can concern instead of to every watcher:
// with thousands of kubelets each watching its own node's pods, one pod
// change reaches a handful of watchers rather than all of them. It is
// guarded by the cache's lock.
type watcherIndex struct {
	unindexed map[*Watcher]struct{}
	// byField maps field → value → the watchers selecting that value.
	byField map[string]map[string]map[*Watcher]struct{}
	// scopes counts the watchers by what they watch (InterestedWatchers).
	scopes map[watchScope]int
}

func newWatcherIndex() watcherIndex {
	return watcherIndex{
		unindexed: map[*Watcher]struct{}{},
		byField:   map[string]map[string]map[*Watcher]struct{}{},
		scopes:    map[watchScope]int{},
	}
}

func (x *watcherIndex) add(w *Watcher) {
	x.scopes[w.scope]++
	if w.indexField == "" {
		x.unindexed[w] = struct{}{}
		return
	}
	byValue := x.byField[w.indexField]
	if byValue == nil {
		byValue = map[string]map[*Watcher]struct{}{}
		x.byField[w.indexField] = byValue
	}
	set := byValue[w.indexValue]
	if set == nil {
		set = map[*Watcher]struct{}{}
		byValue[w.indexValue] = set
	}
	set[w] = struct{}{}
}

func (x *watcherIndex) remove(w *Watcher) {
	if x.scopes[w.scope]--; x.scopes[w.scope] <= 0 {
		delete(x.scopes, w.scope)
	}
	if w.indexField == "" {
		delete(x.unindexed, w)
		return
	}
	byValue := x.byField[w.indexField]
	set := byValue[w.indexValue]
	delete(set, w)
	// Drop empty sets so that nodes that come and go leave nothing behind.
	if len(set) == 0 {
		delete(byValue, w.indexValue)
		if len(byValue) == 0 {
			delete(x.byField, w.indexField)
		}
	}
}

// offer hands ev to every watcher it may concern: the unindexed ones, and
// the indexed ones whose value the object had after the change or before
// it. A watcher's filter implies its indexed value, so no other watcher
// could pass it; translate then decides exactly as without the index
// (an object entering a selection is ADDED, one leaving it DELETED).
// Offering may close a watcher, which removes it from the maps being
// ranged over; Go allows deleting during range.
func (x *watcherIndex) offer(ev Event) {
	for w := range x.unindexed {
		w.offer(ev)
	}
	for field, byValue := range x.byField {
		cur := ev.Obj.Fields.Get(field)
		for w := range byValue[cur] {
			w.offer(ev)
		}
		if ev.Prev == nil {
			continue
		}
		if prev := ev.Prev.Fields.Get(field); prev != cur {
			for w := range byValue[prev] {
				w.offer(ev)
			}
		}
	}
}
