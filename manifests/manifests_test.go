package manifests

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/sentimentpro/sentiment/model"
)

var regions = []string{"us-east", "eu-west", "ap-south"}

// objects is one rendered set of manifests, by kind.
type objects struct {
	namespaces  []*corev1.Namespace
	accounts    []*corev1.ServiceAccount
	services    []*corev1.Service
	configMaps  []*corev1.ConfigMap
	deployments []*appsv1.Deployment
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	pdbs        []*policyv1.PodDisruptionBudget
	policies    []*networkingv1.NetworkPolicy
}

// decode reads a multi-document YAML stream strictly into the Kubernetes
// API types: an unknown kind or an unknown field anywhere fails.
func decode(t *testing.T, source string, stream []byte) *objects {
	t.Helper()
	o := &objects{}
	for i, doc := range strings.Split("\n"+string(stream), "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("%s document %d: %v", source, i, err)
		}
		var obj any
		switch tm.APIVersion + "/" + tm.Kind {
		case "v1/Namespace":
			obj = appendNew(&o.namespaces)
		case "v1/ServiceAccount":
			obj = appendNew(&o.accounts)
		case "v1/Service":
			obj = appendNew(&o.services)
		case "v1/ConfigMap":
			obj = appendNew(&o.configMaps)
		case "apps/v1/Deployment":
			obj = appendNew(&o.deployments)
		case "autoscaling/v2/HorizontalPodAutoscaler":
			obj = appendNew(&o.hpas)
		case "policy/v1/PodDisruptionBudget":
			obj = appendNew(&o.pdbs)
		case "networking.k8s.io/v1/NetworkPolicy":
			obj = appendNew(&o.policies)
		default:
			t.Errorf("%s document %d: unexpected kind %s/%s", source, i, tm.APIVersion, tm.Kind)
			continue
		}
		if err := strictDecode([]byte(doc), obj); err != nil {
			t.Errorf("%s document %d (%s): %v", source, i, tm.Kind, err)
		}
	}
	return o
}

// strictDecode decodes as the API server does in strict mode: field names
// match case-sensitively (encoding/json would accept
// readOnlyRootFileSystem for readOnlyRootFilesystem), and unknown or
// duplicate fields are errors.
func strictDecode(doc []byte, obj any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, obj)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func appendNew[T any](list *[]*T) *T {
	v := new(T)
	*list = append(*list, v)
	return v
}

// TestBaseDecodesStrictly decodes every file of the base on its own and
// every kustomization strictly into kustomize's type.
func TestBaseDecodesStrictly(t *testing.T) {
	files, _ := filepath.Glob("base/*.yaml")
	if len(files) < 5 {
		t.Fatalf("only %d files in base/", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		decode(t, f, data)
	}
	kustomizations, _ := filepath.Glob("*/kustomization.yaml")
	overlays, _ := filepath.Glob("overlays/*/kustomization.yaml")
	for _, f := range append(kustomizations, overlays...) {
		data, _ := os.ReadFile(f)
		var k types.Kustomization
		if err := strictDecode(data, &k); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	keys, err := os.ReadFile("base/publishers.pem")
	if err != nil {
		t.Fatal(err)
	}
	if ks, err := model.ParsePublicKeys(keys); err != nil || len(ks) == 0 {
		t.Errorf("base/publishers.pem: %d keys, %v", len(ks), err)
	}
}

// render runs kustomize (its Go API, as `kustomize build` does) and
// decodes what it writes.
func render(t *testing.T, dir string) *objects {
	t.Helper()
	return decode(t, dir, build(t, dir))
}

// build is `kustomize build dir`: the rendered YAML stream.
func build(t *testing.T, dir string) []byte {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOverlays renders every region and checks what operators rely on.
func TestOverlays(t *testing.T) {
	for _, region := range regions {
		t.Run(region, func(t *testing.T) {
			o := render(t, "overlays/"+region)
			if len(o.deployments) != 3 {
				t.Fatalf("%d deployments, want edge, registry and geo", len(o.deployments))
			}
			checkNamespace(t, o)
			checkConfig(t, o, region)
			for _, d := range o.deployments {
				t.Run(d.Name, func(t *testing.T) {
					checkPod(t, o, d, region)
					checkAvailability(t, o, d)
				})
			}
			checkAutoscaler(t, o)
			checkNetworkPolicies(t, o, region)
			checkTLS(t, o)
			checkEdgeTrustsItsProxies(t, o)
		})
	}
}

func checkNamespace(t *testing.T, o *objects) {
	t.Helper()
	if len(o.namespaces) != 1 || o.namespaces[0].Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("want one namespace enforcing the restricted Pod Security Standard")
	}
	ns := o.namespaces[0].Name
	for _, m := range allMeta(o) {
		if m.Namespace != ns {
			t.Errorf("%s is in namespace %q, want %q", m.Name, m.Namespace, ns)
		}
	}
}

func allMeta(o *objects) []*metav1.ObjectMeta {
	var out []*metav1.ObjectMeta
	for _, x := range o.accounts {
		out = append(out, &x.ObjectMeta)
	}
	for _, x := range o.services {
		out = append(out, &x.ObjectMeta)
	}
	for _, x := range o.configMaps {
		out = append(out, &x.ObjectMeta)
	}
	for _, x := range o.deployments {
		out = append(out, &x.ObjectMeta)
	}
	for _, x := range o.hpas {
		out = append(out, &x.ObjectMeta)
	}
	for _, x := range o.pdbs {
		out = append(out, &x.ObjectMeta)
	}
	for _, x := range o.policies {
		out = append(out, &x.ObjectMeta)
	}
	return out
}

func checkConfig(t *testing.T, o *objects, region string) {
	t.Helper()
	cm := configMap(o, "sentiment-config")
	if cm == nil {
		t.Fatal("no sentiment-config ConfigMap")
	}
	if cm.Data["REGION"] != region {
		t.Errorf("REGION = %q, want %q", cm.Data["REGION"], region)
	}
	if !strings.Contains(cm.Data["DATACENTERS"], region+"=") || !strings.Contains(cm.Data["REGIONS"], region+"=") {
		t.Errorf("DATACENTERS/REGIONS do not list %s: %v", region, cm.Data)
	}
}

// configMap finds a generated ConfigMap by its name before the hash suffix.
func configMap(o *objects, prefix string) *corev1.ConfigMap {
	for _, cm := range o.configMaps {
		if cm.Name == prefix || strings.HasPrefix(cm.Name, prefix+"-") && !strings.Contains(strings.TrimPrefix(cm.Name, prefix+"-"), "-") {
			return cm
		}
	}
	return nil
}

// secretsCreatedPerCluster are referenced but never committed (RUNBOOK).
var secretsCreatedPerCluster = map[string][]string{
	"sentiment-tokens": {"registry-tokens", "edge-reader-token", "geo-internal-token", "console-session-key"},
	"sentiment-s3":     {"access-key", "secret-key"},
	// TLS Secrets as cert-manager writes them (docs/SECURITY.md#tls).
	"sentiment-edge-tls":       {"tls.crt", "tls.key", "ca.crt"},
	"sentiment-registry-tls":   {"tls.crt", "tls.key", "ca.crt"},
	"sentiment-geo-tls":        {"tls.crt", "tls.key", "ca.crt"},
	"sentiment-geo-public-tls": {"tls.crt", "tls.key"},
}

// egressRanges are the placeholder address ranges each region's routers
// leave from, which the other regions' edges admit.
var egressRanges = map[string]string{"us-east": "cidr:192.0.2.0/24", "eu-west": "cidr:198.51.100.0/24", "ap-south": "cidr:203.0.113.0/24"}

func checkPod(t *testing.T, o *objects, d *appsv1.Deployment, region string) {
	t.Helper()
	pod := d.Spec.Template.Spec
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("pod automounts a service account token")
	}
	sa := find(o.accounts, func(a *corev1.ServiceAccount) bool { return a.Name == pod.ServiceAccountName })
	if sa == nil || sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("service account %q missing or automounting its token", pod.ServiceAccountName)
	}
	sc := pod.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v: want runAsNonRoot, a non-zero user, seccomp RuntimeDefault", sc)
	}
	if got := d.Spec.Template.Labels["sentiment.io/region"]; got != region {
		t.Errorf("pod region label %q, want %q", got, region)
	}
	// The recommended labels, on the Deployment and its pods; the version
	// is the image's tag.
	for what, l := range map[string]map[string]string{"deployment": d.Labels, "pod": d.Spec.Template.Labels} {
		want := map[string]string{"app.kubernetes.io/name": d.Name, "app.kubernetes.io/instance": "sentiment-" + region,
			"app.kubernetes.io/version":   strings.TrimPrefix(d.Spec.Template.Spec.Containers[0].Image[strings.LastIndex(d.Spec.Template.Spec.Containers[0].Image, ":"):], ":"),
			"app.kubernetes.io/component": strings.TrimPrefix(d.Name, "sentiment-"), "app.kubernetes.io/part-of": "sentiment-analyzer-pro",
			"app.kubernetes.io/managed-by": "kustomize"}
		for k, v := range want {
			if l[k] != v {
				t.Errorf("%s label %s = %q, want %q", what, k, l[k], v)
			}
		}
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	csc := c.SecurityContext
	if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
		csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
		csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") || len(csc.Capabilities.Add) > 0 {
		t.Errorf("container security context %+v: want no privilege escalation, read-only root, drop ALL", csc)
	}
	if !strings.HasSuffix(c.Image, ":v1.0.0") {
		t.Errorf("image %q is not pinned to the overlay's tag", c.Image)
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[res]; !ok {
			t.Errorf("no %s request", res)
		}
		if _, ok := c.Resources.Limits[res]; !ok {
			t.Errorf("no %s limit", res)
		}
	}
	checkProbe(t, "liveness", c.LivenessProbe, "/health/live", c.Ports)
	checkProbe(t, "readiness", c.ReadinessProbe, "/health/ready", c.Ports)
	checkEnv(t, o, c, pod.TerminationGracePeriodSeconds)
	// Writable paths are volumes only; every mount has a volume.
	for _, m := range c.VolumeMounts {
		if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) {
			t.Errorf("mount %s has no volume", m.Name)
		}
	}
}

func checkProbe(t *testing.T, what string, p *corev1.Probe, path string, ports []corev1.ContainerPort) {
	t.Helper()
	if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path {
		t.Errorf("%s probe %+v: want HTTP GET %s", what, p, path)
		return
	}
	if !slices.ContainsFunc(ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.HTTPGet.Port.String() }) {
		t.Errorf("%s probe port %q is not a container port", what, p.HTTPGet.Port.String())
	}
}

// checkEnv: every ConfigMap reference resolves to an existing key, every
// Secret reference is one the runbook tells operators to create,
// GOMEMLIMIT follows the memory limit, and the grace period covers the
// drain delay plus time for requests in flight.
func checkEnv(t *testing.T, o *objects, c corev1.Container, grace *int64) {
	t.Helper()
	memLimit := false
	for _, e := range c.Env {
		if strings.HasSuffix(e.Name, "_SHUTDOWN_DELAY") {
			delay, err := time.ParseDuration(e.Value)
			if err != nil {
				t.Errorf("%s: %v", e.Name, err)
			} else if grace == nil || time.Duration(*grace)*time.Second < delay+10*time.Second {
				t.Errorf("terminationGracePeriodSeconds %v does not cover %s=%s plus 10s of draining", grace, e.Name, e.Value)
			}
		}
		if e.ValueFrom == nil {
			continue
		}
		if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
			cm := find(o.configMaps, func(m *corev1.ConfigMap) bool { return m.Name == r.Name })
			if cm == nil {
				t.Errorf("%s: ConfigMap %q does not exist", e.Name, r.Name)
			} else if _, ok := cm.Data[r.Key]; !ok {
				t.Errorf("%s: ConfigMap %q has no key %q", e.Name, r.Name, r.Key)
			}
		}
		if r := e.ValueFrom.SecretKeyRef; r != nil && !slices.Contains(secretsCreatedPerCluster[r.Name], r.Key) {
			t.Errorf("%s: secret %s/%s is not documented for operators to create", e.Name, r.Name, r.Key)
		}
	}
	for _, e := range c.Env {
		if e.Name != "GOMEMLIMIT" {
			continue
		}
		mib, err := strconv.Atoi(strings.TrimSuffix(e.Value, "MiB"))
		limit := c.Resources.Limits.Memory().Value()
		if ratio := float64(mib<<20) / float64(limit); err == nil && ratio >= 0.85 && ratio <= 0.95 {
			memLimit = true
		}
	}
	if !memLimit {
		t.Errorf("GOMEMLIMIT is not about 90%% of limits.memory (%v)", c.Resources.Limits.Memory())
	}
}

func checkAvailability(t *testing.T, o *objects, d *appsv1.Deployment) {
	t.Helper()
	podLabels := labels.Set(d.Spec.Template.Labels)
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		t.Errorf("selector %v does not match the pod labels", d.Spec.Selector)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Error("fewer than 2 replicas")
	}
	if s := d.Spec.Strategy.RollingUpdate; s == nil || s.MaxUnavailable == nil || s.MaxUnavailable.IntValue() != 0 {
		t.Error("rolling updates may take a replica away before its successor is ready (want maxUnavailable 0)")
	}
	pdb := find(o.pdbs, func(p *policyv1.PodDisruptionBudget) bool {
		s, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		return err == nil && s.Matches(podLabels)
	})
	if pdb == nil || pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1 {
		t.Error("no PodDisruptionBudget keeping at least one pod")
	}
	svc := find(o.services, func(s *corev1.Service) bool {
		return len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels)
	})
	if svc == nil {
		t.Fatal("no Service selects the pods")
	}
	for _, p := range svc.Spec.Ports {
		c := d.Spec.Template.Spec.Containers[0]
		if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.TargetPort.String() }) {
			t.Errorf("Service port %s targets %q, not a container port", p.Name, p.TargetPort.String())
		}
	}
	policy := find(o.policies, func(p *networkingv1.NetworkPolicy) bool {
		s, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		return err == nil && !s.Empty() && s.Matches(podLabels)
	})
	if policy == nil {
		t.Error("no NetworkPolicy of its own: it gets only the default deny")
	}
}

func checkAutoscaler(t *testing.T, o *objects) {
	t.Helper()
	if len(o.hpas) != 1 {
		t.Fatalf("%d autoscalers, want one for the edge", len(o.hpas))
	}
	h := o.hpas[0]
	if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != "sentiment-edge" {
		t.Errorf("autoscaler targets %+v", h.Spec.ScaleTargetRef)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != 2 || h.Spec.MaxReplicas != 10 {
		t.Errorf("autoscaler replicas %v..%d, want 2..10", h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	var on []string
	for _, m := range h.Spec.Metrics {
		if m.Resource != nil {
			on = append(on, string(m.Resource.Name))
		}
	}
	slices.Sort(on)
	if !slices.Equal(on, []string{"cpu", "memory"}) {
		t.Errorf("autoscaler scales on %v, want cpu and memory", on)
	}
}

// peer describes a NetworkPolicy peer compactly: "pod:<name>",
// "ns:<name>", "cidr:<cidr>" or "pod-label:<k>=<v>".
func peer(p networkingv1.NetworkPolicyPeer) string {
	switch {
	case p.IPBlock != nil:
		return "cidr:" + p.IPBlock.CIDR
	case p.NamespaceSelector != nil && p.PodSelector != nil:
		return "ns:" + p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] + "/" + labels.Set(p.PodSelector.MatchLabels).String()
	case p.NamespaceSelector != nil:
		return "ns:" + p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]
	case p.PodSelector != nil:
		if n := p.PodSelector.MatchLabels["app.kubernetes.io/name"]; n != "" {
			return "pod:" + n
		}
		return "pod-label:" + labels.Set(p.PodSelector.MatchLabels).String()
	}
	return "any"
}

func checkNetworkPolicies(t *testing.T, o *objects, region string) {
	t.Helper()
	deny := find(o.policies, func(p *networkingv1.NetworkPolicy) bool {
		return len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0 &&
			slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) &&
			slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
	})
	if deny == nil {
		t.Error("no default-deny policy for ingress and egress")
	}
	// Who may reach each workload.
	wantIngress := map[string][]string{
		// Other edges: the blob port, for models a peer holds.
		"sentiment-edge":     {"ns:consul", "ns:ingress-nginx", "ns:monitoring", "pod:sentiment-edge", "pod:sentiment-geo"},
		"sentiment-registry": {"ns:consul", "ns:monitoring", "pod-label:sentiment.io/admin-client=true", "pod:sentiment-edge"},
		"sentiment-geo":      {"any"},
	}
	// Which ports each workload may reach (53 is the shared DNS policy).
	wantEgressPorts := map[string][]int32{
		"sentiment-edge":     {8081, 8090, 8500},
		"sentiment-registry": {443, 8500},
		"sentiment-geo":      {8080, 8500, 9000},
	}
	// Edges admit the geo routers of every other region.
	for other, cidr := range egressRanges {
		if other != region {
			wantIngress["sentiment-edge"] = append(wantIngress["sentiment-edge"], cidr)
		}
	}
	slices.Sort(wantIngress["sentiment-edge"])
	for name, want := range wantIngress {
		p := find(o.policies, func(p *networkingv1.NetworkPolicy) bool {
			return p.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] == name
		})
		if p == nil {
			t.Errorf("no policy for %s", name)
			continue
		}
		var from []string
		for _, r := range p.Spec.Ingress {
			if len(r.From) == 0 {
				from = append(from, "any")
			}
			for _, f := range r.From {
				from = append(from, peer(f))
			}
		}
		slices.Sort(from)
		if from = slices.Compact(from); !slices.Equal(from, want) {
			t.Errorf("%s accepts from %v, want %v", name, from, want)
		}
		var ports []int32
		for _, r := range p.Spec.Egress {
			for _, pt := range r.Ports {
				ports = append(ports, pt.Port.IntVal)
			}
		}
		slices.Sort(ports)
		if !slices.Equal(slices.Compact(ports), wantEgressPorts[name]) {
			t.Errorf("%s may reach ports %v, want %v", name, ports, wantEgressPorts[name])
		}
	}
	dns := find(o.policies, func(p *networkingv1.NetworkPolicy) bool { return p.Name == "allow-dns" })
	if dns == nil || len(dns.Spec.Egress) != 1 || len(dns.Spec.Egress[0].Ports) != 2 || dns.Spec.Egress[0].Ports[0].Port.IntVal != 53 {
		t.Error("no DNS egress policy limited to port 53")
	}
}

// checkTLS: mutual TLS between the components is the production setting.
// Every workload serves TLS and is probed over HTTPS; edges and the
// registry require client certificates; the routers reach edges with one,
// verified against the CA; edges reach an https registry; every TLS
// Secret mounted is one operators are told to create.
func checkTLS(t *testing.T, o *objects) {
	t.Helper()
	want := map[string][]string{
		"sentiment-edge":     {"EDGE_TLS_CERT", "EDGE_TLS_KEY", "EDGE_TLS_CLIENT_CA", "EDGE_TLS_CA", "EDGE_PEER_SERVER_NAME"},
		"sentiment-registry": {"REGISTRY_TLS_CERT", "REGISTRY_TLS_KEY", "REGISTRY_TLS_CLIENT_CA"},
		"sentiment-geo":      {"GEO_TLS_CERT", "GEO_TLS_KEY", "GEO_EDGE_CA", "GEO_EDGE_CERT", "GEO_EDGE_KEY", "GEO_EDGE_SERVER_NAME"},
	}
	for _, d := range o.deployments {
		c := d.Spec.Template.Spec.Containers[0]
		for _, name := range want[d.Name] {
			if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name && e.Value != "" }) {
				t.Errorf("%s: no %s", d.Name, name)
			}
		}
		for what, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
				t.Errorf("%s: %s probe is not over HTTPS", d.Name, what)
			}
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Secret != nil {
				if _, ok := secretsCreatedPerCluster[v.Secret.SecretName]; !ok {
					t.Errorf("%s mounts secret %s, which operators are not told to create", d.Name, v.Secret.SecretName)
				}
			}
		}
	}
	if cm := configMap(o, "sentiment-config"); cm == nil || !strings.HasPrefix(cm.Data["REGISTRY_URL"], "https://") {
		t.Error("edges do not reach the registry over https")
	}
}

func find[T any](list []T, ok func(T) bool) T {
	for _, x := range list {
		if ok(x) {
			return x
		}
	}
	var zero T
	return zero
}

// checkEdgeTrustsItsProxies: the edges key rate limits and rollout splits
// on the client a geo router or peer forwards, which they believe from a
// verified client certificate (mutual TLS), not on the router pod's
// address: else one client's requests exhaust every client's allowance
// at an edge (#29, finding 1).
func checkEdgeTrustsItsProxies(t *testing.T, o *objects) {
	t.Helper()
	d := find(o.deployments, func(d *appsv1.Deployment) bool { return d.Name == "sentiment-edge" })
	if d == nil {
		t.Fatal("no sentiment-edge Deployment")
	}
	env := map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["EDGE_TRUST_CLIENT_CERTS"] != "true" || env["EDGE_TLS_CLIENT_CA"] == "" {
		t.Errorf("the edge trusts no forwarded client (EDGE_TRUST_CLIENT_CERTS %q, EDGE_TLS_CLIENT_CA %q): every client behind a router shares one rate-limit bucket",
			env["EDGE_TRUST_CLIENT_CERTS"], env["EDGE_TLS_CLIENT_CA"])
	}
	if p := env["EDGE_TRUSTED_PROXIES"]; p != "" {
		t.Errorf("EDGE_TRUSTED_PROXIES %q: pod addresses change; trust the routers by certificate", p)
	}
}
