package scheduler

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/internal/nodeaffinity"
)

// cycleState is what one scheduling attempt computes about its pod once,
// before looking at nodes.
type cycleState struct {
	pod                    *corev1.Pod
	requests               resources
	nonZeroCPU, nonZeroMem int64
	hostPorts              []hostPort
	nodeAffinity           *nodeaffinity.Selector // required: nodeSelector and required node affinity
	preferred              []nodeaffinity.WeightedTerm
	affinity               *affinityState // nil when no pod (anti-)affinity is involved
	spread                 *spreadState   // nil when the pod has no topology spread constraints
	volumes                *volumeState   // nil when the pod uses no claims or shared disks
	volumeMsg              string         // why no node can take the pod's claims (PreFilter)
}

// filterPlugin rejects nodes a pod cannot run on. reasons say why, worded
// as upstream's plugins word them.
type filterPlugin interface {
	Name() string
	Filter(s *cycleState, ni *nodeInfo) (reasons []string)
}

// scorePlugin ranks feasible nodes. Scores are normalised to 0..100 by
// Normalize and multiplied by Weight, as in upstream's framework.
type scorePlugin interface {
	Name() string
	Weight() int64
	Score(s *cycleState, ni *nodeInfo) int64
	Normalize(scores []int64)
}

const maxNodeScore = 100

// normalizeMax scales scores so the highest becomes maxNodeScore;
// reverse makes the lowest raw score the best.
func normalizeMax(scores []int64, reverse bool) {
	var hi int64
	for _, s := range scores {
		hi = max(hi, s)
	}
	for i, s := range scores {
		switch {
		case hi == 0 && reverse:
			scores[i] = maxNodeScore
		case hi == 0:
			scores[i] = 0
		case reverse:
			scores[i] = maxNodeScore - s*maxNodeScore/hi
		default:
			scores[i] = s * maxNodeScore / hi
		}
	}
}

// noNormalize leaves scores that are already on the 0..100 scale.
type noNormalize struct{}

func (noNormalize) Normalize([]int64) {}

// diagnosis counts why nodes were rejected and renders upstream's
// "0/3 nodes are available: ..." message.
type diagnosis struct {
	nodes   int
	reasons map[string]int
	// preFilter is a reason that holds for every node, given once
	// rather than counted per node, as upstream's PreFilter messages.
	preFilter string
}

func (d *diagnosis) add(reasons []string) {
	if d.reasons == nil {
		d.reasons = map[string]int{}
	}
	for _, r := range reasons {
		d.reasons[r]++
	}
}

func (d *diagnosis) message() string {
	parts := make([]string, 0, len(d.reasons))
	for r, n := range d.reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	msg := fmt.Sprintf("0/%d nodes are available", d.nodes)
	if d.preFilter != "" {
		return msg + ": " + d.preFilter + "."
	}
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, ", ")
	}
	return msg + "."
}
