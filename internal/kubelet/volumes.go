package kubelet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/internal/kubelet/csi"
)

// podVolumes resolves a pod's volumes to host paths: it writes the
// kubelet-managed ones (emptyDir, configMap, secret, downward API,
// projected) under the pod's directory, finds the others (hostPath,
// claims bound to local volumes) and has CSI drivers mount theirs. Everything it reads is passed in, so a
// new volume type adds a case to setupVolume and, if needed, a field here.
type podVolumes struct {
	podsDir      string // DataDir/pods
	configMaps   podObjects[*v1.ConfigMap]
	secrets      podObjects[*v1.Secret]
	client       kubernetes.Interface // PersistentVolumeClaims and PersistentVolumes
	token        func(ctx context.Context, pod *v1.Pod, src *v1.ServiceAccountTokenProjection) (string, error)
	trustBundles func(ctx context.Context, src *v1.ClusterTrustBundleProjection, defMode *int32) (map[string]volumeFile, error)
	// podCertificates projects the source-th source of a volume, a
	// podCertificate one; nil leaves them unsupported.
	podCertificates func(ctx context.Context, pod *v1.Pod, volume string, source int, src *v1.PodCertificateProjection, defMode *int32) (map[string]volumeFile, error)
	downward        func(pod *v1.Pod) *podEnv // the values downward API files show
	csi             *csi.Manager              // CSI volumes; nil leaves them unsupported
	// blockDevice resolves a Block local volume's device; nil: localBlockDevice.
	blockDevice func(path string) (string, error)
}

// volumes is the pod volume resolver over the kubelet's current sources.
func (k *Kubelet) volumes() *podVolumes {
	return &podVolumes{
		podsDir: filepath.Join(k.cfg.DataDir, "pods"), configMaps: k.configMaps, secrets: k.secrets, client: k.client,
		token: k.tokens.token, trustBundles: k.trustBundleFiles, podCertificates: k.podCerts.files,
		downward: func(pod *v1.Pod) *podEnv { return &podEnv{k: k, pod: pod, podIP: pod.Status.PodIP} },
		csi:      k.csi, blockDevice: k.blockDevice,
	}
}

// setupVolumes prepares the pod's volumes; see podVolumes.
func (k *Kubelet) setupVolumes(ctx context.Context, pod *v1.Pod) (map[string]string, error) {
	return k.volumes().setupVolumes(ctx, pod)
}

// teardownVolumes removes what setupVolumes wrote for the pod.
// CSI drivers get a bounded time of their own: the pod's context may be
// ending, and a volume left published would keep the pod's directory.
func (k *Kubelet) teardownVolumes(uid types.UID) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return k.volumes().teardownVolumes(ctx, uid)
}

func (v *podVolumes) volumeDir(uid types.UID, kind, name string) string {
	return filepath.Join(v.podsDir, string(uid), "volumes", kind, name)
}

// setupVolumes prepares every volume of the pod on the node and returns the
// host path of each by name. It runs at every sync, so ConfigMap, Secret
// and downward API contents follow their sources.
func (v *podVolumes) setupVolumes(ctx context.Context, pod *v1.Pod) (map[string]string, error) {
	out := make(map[string]string, len(pod.Spec.Volumes))
	gid := int64(-1)
	if fg := podSecurity(pod).FSGroup; fg != nil {
		gid = *fg
	}
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		var path string
		var err error
		if vol.PersistentVolumeClaim == nil {
			// Only claims can be Block; claimPath checks theirs.
			err = checkVolumeMode(pod, vol.Name, v1.PersistentVolumeFilesystem)
		}
		if err == nil {
			path, err = v.setupVolume(ctx, pod, vol, gid)
		}
		if err != nil {
			return nil, volumeSetupError(vol.Name, err)
		}
		out[vol.Name] = path
	}
	return out, nil
}

func (v *podVolumes) setupVolume(ctx context.Context, pod *v1.Pod, vol *v1.Volume, gid int64) (string, error) {
	src := vol.VolumeSource
	switch {
	case src.EmptyDir != nil:
		dir := v.volumeDir(pod.UID, "empty-dir", vol.Name)
		return dir, setupEmptyDir(dir, src.EmptyDir, gid)
	case src.HostPath != nil:
		return src.HostPath.Path, checkHostPath(src.HostPath)
	case src.ConfigMap != nil:
		files, err := v.configMapFiles(pod, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.DefaultMode, src.ConfigMap.Optional)
		if err != nil {
			return "", err
		}
		dir := v.volumeDir(pod.UID, "configmap", vol.Name)
		_, err = writeAtomicDir(dir, files, gid)
		return dir, err
	case src.Secret != nil:
		files, err := v.secretFiles(pod, src.Secret.SecretName, src.Secret.Items, src.Secret.DefaultMode, src.Secret.Optional)
		if err != nil {
			return "", err
		}
		dir := v.volumeDir(pod.UID, "secret", vol.Name)
		_, err = writeAtomicDir(dir, files, gid)
		return dir, err
	case src.DownwardAPI != nil:
		files, err := v.downwardFiles(pod, src.DownwardAPI.Items, src.DownwardAPI.DefaultMode)
		if err != nil {
			return "", err
		}
		dir := v.volumeDir(pod.UID, "downward-api", vol.Name)
		_, err = writeAtomicDir(dir, files, gid)
		return dir, err
	case src.Projected != nil:
		files, err := v.projectedFiles(ctx, pod, vol.Name, src.Projected)
		if err != nil {
			return "", err
		}
		dir := v.volumeDir(pod.UID, "projected", vol.Name)
		_, err = writeAtomicDir(dir, files, gid)
		return dir, err
	case src.PersistentVolumeClaim != nil:
		return v.claimPath(ctx, pod, vol.Name, src.PersistentVolumeClaim)
	case src.CSI != nil && v.csi != nil:
		return v.csi.SetUpEphemeral(ctx, pod, vol.Name, src.CSI)
	}
	return "", errors.New("volume type not supported by skiff")
}

// setupEmptyDir creates the directory; medium Memory mounts a tmpfs, sized
// by sizeLimit when given.
func setupEmptyDir(dir string, ed *v1.EmptyDirVolumeSource, gid int64) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	if ed.Medium == v1.StorageMediumMemory && !isMountPoint(dir) {
		opts := "mode=0777"
		if ed.SizeLimit != nil && !ed.SizeLimit.IsZero() {
			opts += ",size=" + strconv.FormatInt(ed.SizeLimit.Value(), 10)
		}
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
			return fmt.Errorf("mount tmpfs: %w", err)
		}
	}
	if err := os.Chmod(dir, 0o777); err != nil { // regardless of umask
		return err
	}
	if gid >= 0 {
		if err := os.Chown(dir, -1, int(gid)); err != nil {
			return err
		}
		return os.Chmod(dir, 0o777|os.ModeSetgid)
	}
	return nil
}

func isMountPoint(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && fields[4] == dir {
			return true
		}
	}
	return false
}

// checkHostPath applies the hostPath type's check, creating the path for
// the *OrCreate types.
func checkHostPath(hp *v1.HostPathVolumeSource) error {
	t := v1.HostPathUnset
	if hp.Type != nil {
		t = *hp.Type
	}
	info, err := os.Stat(hp.Path)
	switch t {
	case v1.HostPathUnset:
		return nil
	case v1.HostPathDirectoryOrCreate:
		if os.IsNotExist(err) {
			return os.MkdirAll(hp.Path, 0o755)
		}
		if err == nil && !info.IsDir() {
			return fmt.Errorf("hostPath type check failed: %s is not a directory", hp.Path)
		}
		return err
	case v1.HostPathFileOrCreate:
		if os.IsNotExist(err) {
			if err := os.MkdirAll(filepath.Dir(hp.Path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(hp.Path, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
		if err == nil && info.IsDir() {
			return fmt.Errorf("hostPath type check failed: %s is not a file", hp.Path)
		}
		return err
	}
	if err != nil {
		return fmt.Errorf("hostPath type check failed: %s does not exist", hp.Path)
	}
	mode := info.Mode()
	ok := map[v1.HostPathType]bool{
		v1.HostPathDirectory: mode.IsDir(),
		v1.HostPathFile:      mode.IsRegular(),
		v1.HostPathSocket:    mode&os.ModeSocket != 0,
		v1.HostPathCharDev:   mode&os.ModeCharDevice != 0,
		v1.HostPathBlockDev:  mode&os.ModeDevice != 0 && mode&os.ModeCharDevice == 0,
	}[t]
	if !ok {
		return fmt.Errorf("hostPath type check failed: %s is not a %s", hp.Path, t)
	}
	return nil
}

func fileMode(item *int32, def *int32) os.FileMode {
	switch {
	case item != nil:
		return os.FileMode(*item)
	case def != nil:
		return os.FileMode(*def)
	}
	return 0o644
}

func (v *podVolumes) configMapFiles(pod *v1.Pod, name string, items []v1.KeyToPath, defMode *int32, optional *bool) (map[string]volumeFile, error) {
	cm, err := v.configMaps.Get(pod.Namespace, name)
	if err != nil {
		if apierrors.IsNotFound(err) && isOptional(optional) {
			return map[string]volumeFile{}, nil
		}
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("configmap %q not found", name)
		}
		return nil, fmt.Errorf("configmap %q: %w", name, err)
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for key, v := range cm.Data {
		data[key] = []byte(v)
	}
	for key, v := range cm.BinaryData {
		data[key] = v
	}
	return projectKeys(data, items, defMode, optional, "configmap", name)
}

func (v *podVolumes) secretFiles(pod *v1.Pod, name string, items []v1.KeyToPath, defMode *int32, optional *bool) (map[string]volumeFile, error) {
	s, err := v.secrets.Get(pod.Namespace, name)
	if err != nil {
		if apierrors.IsNotFound(err) && isOptional(optional) {
			return map[string]volumeFile{}, nil
		}
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("secret %q not found", name)
		}
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	return projectKeys(s.Data, items, defMode, optional, "secret", name)
}

// projectKeys maps keys to files: every key, or just items at their paths.
func projectKeys(data map[string][]byte, items []v1.KeyToPath, defMode *int32, optional *bool, kind, name string) (map[string]volumeFile, error) {
	out := map[string]volumeFile{}
	if len(items) == 0 {
		for key, v := range data {
			out[key] = volumeFile{v, fileMode(nil, defMode)}
		}
		return out, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if isOptional(optional) {
				continue
			}
			return nil, fmt.Errorf("configuration of %s %q has no key %q", kind, name, it.Key)
		}
		if err := safeRelPath(it.Path); err != nil {
			return nil, err
		}
		out[filepath.Clean(it.Path)] = volumeFile{v, fileMode(it.Mode, defMode)}
	}
	return out, nil
}

func safeRelPath(p string) error {
	if filepath.IsAbs(p) || strings.HasPrefix(filepath.Clean(p), "..") {
		return fmt.Errorf("path %q must be relative and may not contain '..'", p)
	}
	return nil
}

func (v *podVolumes) downwardFiles(pod *v1.Pod, items []v1.DownwardAPIVolumeFile, defMode *int32) (map[string]volumeFile, error) {
	env := v.downward(pod)
	out := map[string]volumeFile{}
	for _, it := range items {
		if err := safeRelPath(it.Path); err != nil {
			return nil, err
		}
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = env.fieldValue(it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			c := findContainer(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return nil, fmt.Errorf("downwardAPI: no container %q", it.ResourceFieldRef.ContainerName)
			}
			v, err = env.resourceValue(c, it.ResourceFieldRef)
		}
		if err != nil {
			return nil, err
		}
		out[filepath.Clean(it.Path)] = volumeFile{[]byte(v), fileMode(it.Mode, defMode)}
	}
	return out, nil
}

func (v *podVolumes) projectedFiles(ctx context.Context, pod *v1.Pod, volume string, p *v1.ProjectedVolumeSource) (map[string]volumeFile, error) {
	out := map[string]volumeFile{}
	merge := func(files map[string]volumeFile, err error) error {
		if err != nil {
			return err
		}
		for name, f := range files {
			out[name] = f
		}
		return nil
	}
	for i, s := range p.Sources {
		var err error
		switch {
		case s.ConfigMap != nil:
			err = merge(v.configMapFiles(pod, s.ConfigMap.Name, s.ConfigMap.Items, p.DefaultMode, s.ConfigMap.Optional))
		case s.Secret != nil:
			err = merge(v.secretFiles(pod, s.Secret.Name, s.Secret.Items, p.DefaultMode, s.Secret.Optional))
		case s.DownwardAPI != nil:
			err = merge(v.downwardFiles(pod, s.DownwardAPI.Items, p.DefaultMode))
		case s.ServiceAccountToken != nil:
			err = merge(v.tokenFiles(ctx, pod, s.ServiceAccountToken, p.DefaultMode))
		case s.ClusterTrustBundle != nil:
			err = merge(v.trustBundles(ctx, s.ClusterTrustBundle, p.DefaultMode))
		case s.PodCertificate != nil && v.podCertificates != nil:
			err = merge(v.podCertificates(ctx, pod, volume, i, s.PodCertificate, p.DefaultMode))
		case s.PodCertificate != nil:
			err = errNoPodCertificates
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// tokenFiles projects a ServiceAccount token; the cached token is reused
// until it is due for refresh, and every sync rewrites the volume, so a
// refreshed token replaces the file in place.
func (v *podVolumes) tokenFiles(ctx context.Context, pod *v1.Pod, src *v1.ServiceAccountTokenProjection, defMode *int32) (map[string]volumeFile, error) {
	if err := safeRelPath(src.Path); err != nil {
		return nil, err
	}
	token, err := v.token(ctx, pod, src)
	if err != nil {
		return nil, err
	}
	return map[string]volumeFile{filepath.Clean(src.Path): {[]byte(token), fileMode(nil, defMode)}}, nil
}

// claimPath resolves a bound claim to the host path of its hostPath or
// local PersistentVolume, or has the CSI driver mount a CSI one. A Block
// volume resolves to its device (blockvolumes.go).
func (v *podVolumes) claimPath(ctx context.Context, pod *v1.Pod, volume string, src *v1.PersistentVolumeClaimVolumeSource) (string, error) {
	claim := src.ClaimName
	pvc, err := v.client.CoreV1().PersistentVolumeClaims(pod.Namespace).Get(ctx, claim, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("persistentvolumeclaim %q: %w", claim, err)
	}
	if pvc.Spec.VolumeName == "" {
		return "", fmt.Errorf("persistentvolumeclaim %q is not bound", claim)
	}
	pv, err := v.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("persistentvolume %q: %w", pvc.Spec.VolumeName, err)
	}
	mode := persistentVolumeMode(pv)
	if err := checkVolumeMode(pod, volume, mode); err != nil {
		return "", err
	}
	if mode == v1.PersistentVolumeBlock {
		return v.mapBlockVolume(ctx, pod, volume, pv, src.ReadOnly)
	}
	switch {
	case pv.Spec.HostPath != nil:
		return pv.Spec.HostPath.Path, checkHostPath(pv.Spec.HostPath)
	case pv.Spec.Local != nil:
		return pv.Spec.Local.Path, nil
	case pv.Spec.CSI != nil && v.csi != nil:
		return v.csi.SetUpPersistent(ctx, pod, volume, pv, src.ReadOnly)
	}
	return "", fmt.Errorf("persistentvolume %q: only hostPath, local and CSI volumes are supported", pv.Name)
}

// teardownVolumes has CSI drivers unmount their volumes, unmounts
// memory-backed emptyDirs and removes the pod's directory. A CSI volume
// that stays mounted keeps the directory, so its data is never deleted.
func (v *podVolumes) teardownVolumes(ctx context.Context, uid types.UID) error {
	if v.csi != nil {
		if err := v.csi.TearDownPod(ctx, uid); err != nil {
			return err
		}
	}
	podDir := filepath.Join(v.podsDir, string(uid))
	entries, _ := os.ReadDir(filepath.Join(podDir, "volumes", "empty-dir"))
	for _, e := range entries {
		dir := filepath.Join(podDir, "volumes", "empty-dir", e.Name())
		if isMountPoint(dir) {
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount %s: %w", dir, err)
			}
		}
	}
	return os.RemoveAll(podDir)
}
