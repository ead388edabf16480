package fieldmanager

import (
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// capUpdateManagers merges the oldest Update entries into one
// "ancient-changes" entry per apiVersion until at most maxUpdateManagers
// Update entries remain, as upstream does. The first entry of a version is
// left alone until a second one of that version joins it in the bucket.
func capUpdateManagers(mf *managed) error {
	var updaters []string
	for id, vs := range mf.fields {
		if !vs.Applied() {
			updaters = append(updaters, id)
		}
	}
	if len(updaters) <= maxUpdateManagers {
		return nil
	}
	sort.Slice(updaters, func(i, j int) bool {
		if ti, tj := unixOf(mf.times[updaters[i]]), unixOf(mf.times[updaters[j]]); ti != tj {
			return ti < tj
		}
		return updaters[i] < updaters[j]
	})
	firstOfVersion := map[fieldpath.APIVersion]string{}
	remaining := len(updaters)
	for _, id := range updaters {
		if remaining <= maxUpdateManagers {
			break
		}
		vs, t := mf.fields[id], mf.times[id]
		version := vs.APIVersion()
		bucket, err := managerID(metav1.ManagedFieldsEntry{
			Manager:    ancientChanges,
			Operation:  metav1.ManagedFieldsOperationUpdate,
			APIVersion: string(version),
		})
		if err != nil {
			return err
		}
		first, seen := firstOfVersion[version]
		if !seen {
			firstOfVersion[version] = id
			continue
		}
		if _, ok := mf.fields[bucket]; !ok {
			mf.fields[bucket] = mf.fields[first]
			delete(mf.fields, first)
		}
		mf.fields[bucket] = fieldpath.NewVersionedSet(vs.Set().Union(mf.fields[bucket].Set()), version, false)
		delete(mf.fields, id)
		remaining--
		// The merged entry is the newer one, so its time stands for the bucket.
		mf.times[bucket] = t
	}
	return nil
}
