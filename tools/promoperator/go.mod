// Module promoperator pins the Prometheus Operator (Apache-2.0) whose
// published CRDs (ServiceMonitor, PrometheusRule) the Kubernetes test
// installs before it applies deploy/prometheus-operator.
module sentiment-tools/promoperator

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.85.0
