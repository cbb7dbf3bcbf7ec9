package distrib

import "github.com/VictoriaMetrics/metrics"

var (
	fetchesDone    = metrics.NewCounter(`edge_artifact_fetches_total{result="ok"}`)
	peerFallbacks  = metrics.NewCounter(`edge_artifact_peer_fallbacks_total`)
	uploads        = metrics.NewCounter(`edge_artifact_uploads_total`)
	uploadsRefused = metrics.NewCounter(`edge_artifact_uploads_refused_total`)
	uploadBytes    = metrics.NewCounter(`edge_artifact_upload_bytes_total`)
)

func fetchBytes(kind string) *metrics.Counter {
	return metrics.GetOrCreateCounter(`edge_artifact_fetch_bytes_total{source="` + kind + `"}`)
}

func fetchBusy(kind string) *metrics.Counter {
	return metrics.GetOrCreateCounter(`edge_artifact_fetch_busy_total{source="` + kind + `"}`)
}

func fetchFailures(kind string) *metrics.Counter {
	return metrics.GetOrCreateCounter(`edge_artifact_fetch_failures_total{source="` + kind + `"}`)
}

func fetchResumes(kind string) *metrics.Counter {
	return metrics.GetOrCreateCounter(`edge_artifact_fetch_resumes_total{source="` + kind + `"}`)
}

func fetchMismatches(kind string) *metrics.Counter {
	return metrics.GetOrCreateCounter(`edge_artifact_fetch_mismatches_total{source="` + kind + `"}`)
}
