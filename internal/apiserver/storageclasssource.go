package apiserver

import storagev1 "k8s.io/api/storage/v1"

var storageClassesGVR = storagev1.SchemeGroupVersion.WithResource("storageclasses")

// storageClassSource lists StorageClasses from the watch cache for the
// storage admission plugins. Objects are shared: read only.
type storageClassSource struct{ s *Server }

func (src storageClassSource) ListStorageClasses() []*storagev1.StorageClass {
	res := src.s.resources[storageClassesGVR]
	if res == nil {
		return nil
	}
	entries, _ := res.cache.List(res.prefix, nil)
	out := make([]*storagev1.StorageClass, 0, len(entries))
	for _, e := range entries {
		if c, ok := e.Obj.(*storagev1.StorageClass); ok {
			out = append(out, c)
		}
	}
	return out
}
