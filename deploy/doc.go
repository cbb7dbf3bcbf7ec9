// Package deploy holds the tests of what operators deploy: the container
// images built from the Dockerfiles at the repository root (with buildah),
// the Prometheus alert rules and the Grafana dashboard under this
// directory (with promtool), and a real Prometheus scraping the services.
// The Kubernetes manifests have their own tests in manifests/.
package deploy
