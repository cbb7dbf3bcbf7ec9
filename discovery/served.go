package discovery

import (
	"encoding/json"
	"strconv"
)

// An edge serving several models reports each in its own meta key,
// served_0, served_1, … (Consul meta keys allow no dots, model names do),
// its value a small JSON object: ServedModel. The first model is also in
// the single-model keys (MetaModel, MetaChannel, MetaVersion, MetaDigest,
// MetaRejected), which readers older than several models read.
const metaServedPrefix = "served_"

// ServedModel is one model an edge serves, as its Consul meta says.
type ServedModel struct {
	Model    string `json:"model"`
	Channel  string `json:"channel"`
	Version  string `json:"version,omitempty"`
	Digest   string `json:"digest,omitempty"`
	Rejected string `json:"rejected,omitempty"` // the last version it refused
}

// SetServed writes model i of an edge into meta (model 0 into the
// single-model keys too).
func SetServed(meta map[string]string, i int, m ServedModel) {
	b, _ := json.Marshal(m)
	meta[metaServedPrefix+strconv.Itoa(i)] = string(b)
	if i == 0 {
		meta[MetaModel], meta[MetaChannel] = m.Model, m.Channel
		setOrDelete(meta, MetaVersion, m.Version)
		setOrDelete(meta, MetaDigest, m.Digest)
		setOrDelete(meta, MetaRejected, m.Rejected)
	}
}

func setOrDelete(meta map[string]string, key, value string) {
	if value == "" {
		delete(meta, key)
		return
	}
	meta[key] = value
}

// Served is what an edge's meta says it serves: the served_N keys in
// order, or, from an edge older than several models, the single-model
// keys. An unreadable served_N key is skipped.
func Served(meta map[string]string) []ServedModel {
	var out []ServedModel
	for i := 0; ; i++ {
		v, ok := meta[metaServedPrefix+strconv.Itoa(i)]
		if !ok {
			break
		}
		var m ServedModel
		if json.Unmarshal([]byte(v), &m) == nil && m.Model != "" {
			out = append(out, m)
		}
	}
	if out == nil && meta[MetaModel] != "" {
		out = append(out, ServedModel{Model: meta[MetaModel], Channel: meta[MetaChannel], Version: meta[MetaVersion],
			Digest: meta[MetaDigest], Rejected: meta[MetaRejected]})
	}
	return out
}

// ServedFrom is the model called model, followed on channel, among what an
// edge's meta says it serves.
func ServedFrom(meta map[string]string, model, channel string) (ServedModel, bool) {
	for _, m := range Served(meta) {
		if m.Model == model && m.Channel == channel {
			return m, true
		}
	}
	return ServedModel{}, false
}
