package kubelet

import (
	"fmt"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
)

// linkContainerLog adds the /var/log/containers/<pod>_<ns>_<container>-<id>.log
// symlink log shippers look for.
func (k *Kubelet) linkContainerLog(pod *v1.Pod, container, id, logPath string) {
	if k.cfg.ContainerLogLinkDir == "" {
		return
	}
	if err := os.MkdirAll(k.cfg.ContainerLogLinkDir, 0o755); err != nil {
		return
	}
	link := filepath.Join(k.cfg.ContainerLogLinkDir, fmt.Sprintf("%s_%s_%s-%s.log", pod.Name, pod.Namespace, container, id))
	target := filepath.Join(k.podLogDir(pod), logPath)
	os.Remove(link)
	if err := os.Symlink(target, link); err != nil {
		k.log.Debug("link container log", "err", err)
	}
}
