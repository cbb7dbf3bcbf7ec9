// Package manifests holds the Kubernetes manifests (a kustomize base and
// one overlay per region) and the tests that decode them strictly into the
// Kubernetes API types, render every overlay with kustomize and check the
// security and availability properties of every workload.
package manifests
