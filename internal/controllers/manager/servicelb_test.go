package manager

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestLoadBalancerGetsReadyNodeAddresses(t *testing.T) {
	c, ctx := startManager(t)
	mkNode := func(name, ip string, ready corev1.ConditionStatus) {
		n, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready, LastHeartbeatTime: metav1.Now()}}
		if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mkNode("n1", "192.0.2.11", corev1.ConditionTrue)
	mkNode("n2", "192.0.2.12", corev1.ConditionFalse)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "lb"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "x"},
		Ports: []corev1.ServicePort{{Port: 80}},
	}}
	if _, err := c.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "load-balancer ingress = the ready node", func() bool {
		got, err := c.CoreV1().Services("default").Get(ctx, "lb", metav1.GetOptions{})
		ing := got.Status.LoadBalancer.Ingress
		return err == nil && len(ing) == 1 && ing[0].IP == "192.0.2.11"
	})
}
