// Package validate checks the Kubernetes manifests of deploy/kubernetes
// with the Kubernetes API's own types: every document decodes strictly (a
// misspelt or misplaced field fails), and the properties the README
// promises hold. It is a module of its own so that the mapper module does
// not depend on the Kubernetes API.
package validate

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// manifests decodes every listed resource strictly into its API type.
func manifests(t *testing.T) map[string]any {
	t.Helper()
	var kust struct {
		Resources []string `json:"resources"`
	}
	readStrict(t, "kustomization.yaml", &kust)
	out := map[string]any{}
	for _, f := range kust.Resources {
		raw, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(raw, &meta); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var obj any
		switch meta.Kind {
		case "Deployment":
			obj = &appsv1.Deployment{}
		case "Service":
			obj = &corev1.Service{}
		case "ConfigMap":
			obj = &corev1.ConfigMap{}
		case "Secret":
			obj = &corev1.Secret{}
		case "Job":
			obj = &batchv1.Job{}
		case "PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		default:
			t.Fatalf("%s: kind %q is not checked here", f, meta.Kind)
		}
		if err := yaml.UnmarshalStrict(raw, obj); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[meta.Kind] = obj
	}
	return out
}

func readStrict(t *testing.T, name string, v any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(raw, v); err != nil && !bytes.Contains(raw, []byte("kind: Kustomization")) {
		t.Fatalf("%s: %v", name, err)
	}
}

func TestManifests(t *testing.T) {
	m := manifests(t)
	dep := m["Deployment"].(*appsv1.Deployment)
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", dep.Spec.Replicas)
	}
	pod := dep.Spec.Template.Spec
	if ps := pod.SecurityContext; ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
		t.Error("the pod may run as root")
	}
	sel, err := metaSelector(dep.Spec.Selector.MatchLabels)
	if err != nil || !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("the Deployment's selector does not match its pods: %v", err)
	}
	c := pod.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/monitoring/ready" {
		t.Error("no readiness probe on /monitoring/ready")
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/monitoring/live" {
		t.Error("no liveness probe on /monitoring/live")
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Error("the container is not read-only, unprivileged, without capabilities")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("requests and a memory limit must be set")
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != 8100 || ports["admin"] != 8101 {
		t.Errorf("ports %v: want http 8100 (PORT) and admin 8101 (ADMIN_ADDR)", ports)
	}
	cm := m["ConfigMap"].(*corev1.ConfigMap)
	if cm.Data["ADMIN_ADDR"] != ":8101" || cm.Data["MIGRATE_ON_START"] != "false" {
		t.Errorf("ConfigMap %v: the admin routes must be on :8101 and the Job migrates", cm.Data)
	}
	svc := m["Service"].(*corev1.Service)
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Error("the Service does not select the Deployment's pods")
	}
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.String() == "admin" || p.TargetPort.IntValue() == 8101 {
			t.Error("the Service exposes the admin port")
		}
	}
	pdb := m["PodDisruptionBudget"].(*policyv1.PodDisruptionBudget)
	psel, err := metaSelector(pdb.Spec.Selector.MatchLabels)
	if err != nil || !psel.Matches(labels.Set(dep.Spec.Template.Labels)) || pdb.Spec.MinAvailable == nil {
		t.Errorf("the PodDisruptionBudget does not cover the pods: %v", err)
	}
	job := m["Job"].(*batchv1.Job)
	if args := job.Spec.Template.Spec.Containers[0].Args; !slices.Equal(args, []string{"migrate", "up"}) {
		t.Errorf("the Job runs %v, want migrate up", args)
	}
	sec := m["Secret"].(*corev1.Secret)
	for _, k := range []string{"INSTAGRAM_APP_SECRET", "WEBHOOK_VERIFY_TOKEN", "ADMIN_TOKEN", "DATABASE_URL"} {
		if _, ok := sec.StringData[k]; !ok {
			t.Errorf("the Secret example lacks %s", k)
		}
	}
}

func metaSelector(m map[string]string) (labels.Selector, error) {
	return labels.ValidatedSelectorFromSet(m)
}
