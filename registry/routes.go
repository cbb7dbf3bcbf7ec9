package registry

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/registry/wire"
)

var (
	bytesIn         = metrics.NewCounter(`registry_upload_bytes_total`)
	publishOK       = metrics.NewCounter(`registry_publishes_total{result="ok"}`)
	publishFailed   = metrics.NewCounter(`registry_publishes_total{result="error"}`)
	uploadsOK       = metrics.NewCounter(`registry_blob_uploads_total{result="ok"}`)
	uploadsRejected = metrics.NewCounter(`registry_blob_uploads_total{result="error"}`)
	bytesOut        = metrics.NewCounter(`registry_blob_bytes_out_total`)
	streamsRefused  = metrics.NewCounter(`registry_blob_streams_refused_total`)
)

// MaxWait bounds a long-poll.
const MaxWait = 5 * time.Minute

func (a *API) mountRegistry() {
	a.Handle("PUT /v1/blobs/{digest}", RolePublisher, a.putBlob)
	a.Handle("GET /v1/blobs/{digest}", RoleReader, a.getBlob)
	a.Handle("HEAD /v1/blobs/{digest}", RoleReader, a.getBlob)
	a.Handle("GET /v1/whoami", RoleReader, whoami)
	a.Handle("GET /v1/models", RoleReader, a.listModels)
	a.Handle("GET /v1/models/{name}/versions", RoleReader, a.listVersions)
	a.Handle("PUT /v1/models/{name}/versions/{version}", RolePublisher, a.createVersion)
	a.Handle("GET /v1/models/{name}/versions/{version}", RoleReader, a.getVersion)
	a.Handle("DELETE /v1/models/{name}/versions/{version}", RoleAdmin, a.deleteVersion)
	a.Handle("PATCH /v1/models/{name}/versions/{version}", RolePublisher, a.editVersion)
	a.Handle("GET /v1/models/{name}/versions/{version}/artifact", RoleReader, a.getArtifact)
	a.Handle("HEAD /v1/models/{name}/versions/{version}/artifact", RoleReader, a.getArtifact)
	a.Handle("GET /v1/models/{name}/channels", RoleReader, a.listChannels)
	a.Handle("GET /v1/models/{name}/channels/{channel}", RoleReader, a.getChannel)
	a.Handle("GET /v1/models/{name}/channels/{channel}/resolve", RoleReader, a.resolve)
}

func (a *API) putBlob(w http.ResponseWriter, r *http.Request, p Principal) error {
	counted := &countingReader{r: r.Body}
	blob, created, err := a.reg.PutBlob(r.Context(), r.PathValue("digest"), counted, r.ContentLength)
	bytesIn.AddInt64(counted.n)
	if err != nil {
		uploadsRejected.Inc()
		if counted.err != nil {
			return bodyError(counted.err) // the client's, whatever the store made of it
		}
		return err
	}
	uploadsOK.Inc()
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	WriteJSON(w, code, blob)
	return nil
}

func (a *API) getBlob(w http.ResponseWriter, r *http.Request, _ Principal) error {
	return a.serveBlob(w, r, r.PathValue("digest"))
}

func (a *API) getArtifact(w http.ResponseWriter, r *http.Request, _ Principal) error {
	v, err := a.reg.GetVersion(r.Context(), r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		return err
	}
	return a.serveBlob(w, r, v.Digest)
}

// serveBlob streams an artifact with ETag = digest, honouring
// If-None-Match and a single byte Range.
func (a *API) serveBlob(w http.ResponseWriter, r *http.Request, digest string) error {
	info, err := a.reg.StatBlob(r.Context(), digest)
	if err != nil {
		return err
	}
	etag := `"` + digest + `"`
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Accept-Ranges", "bytes")
	// Immutable, but only for the client that fetched it: the artifact
	// needs a token, and "public" would let a shared cache hand it to
	// anyone (RFC 9111 §3.5).
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	h.Set("Content-Type", "application/octet-stream")
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == "*" || strings.Contains(inm, etag)) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	start, length, partial, err := parseRange(r.Header.Get("Range"), info.Size)
	if err != nil {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", info.Size))
		return httperr.New(http.StatusRequestedRangeNotSatisfiable, "%s", err.Error())
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	code := http.StatusOK
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, info.Size))
		code = http.StatusPartialContent
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(code)
		return nil
	}
	if limit := a.reg.cfg.MaxBlobStreams; !a.blobStreams.Acquire("", limit) {
		streamsRefused.Inc()
		return httperr.New(http.StatusServiceUnavailable, "this replica streams %d artifacts at once; retry after the time in Retry-After", limit)
	}
	defer a.blobStreams.Release("")
	rc, _, err := a.reg.OpenBlob(r.Context(), digest, start, length)
	if err != nil {
		return err
	}
	defer rc.Close()
	w.WriteHeader(code)
	n, err := io.Copy(w, rc)
	bytesOut.AddInt64(n)
	if err != nil {
		a.log.Warn("blob download cut short", "request_id", RequestID(r.Context()), "digest", digest, "err", err)
	}
	return nil
}

// parseRange understands one range ("bytes=a-b", "bytes=a-", "bytes=-n");
// anything else (absent, several ranges, other units) means the whole body.
func parseRange(header string, size int64) (start, length int64, partial bool, err error) {
	spec, ok := strings.CutPrefix(header, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, size, false, nil
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, size, false, nil
	}
	switch {
	case first == "":
		n, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || n <= 0 {
			return 0, 0, false, fmt.Errorf("invalid range %q", header)
		}
		n = min(n, size)
		return size - n, n, true, nil
	default:
		s, perr := strconv.ParseInt(first, 10, 64)
		if perr != nil || s < 0 || s >= size {
			return 0, 0, false, fmt.Errorf("range %q outside 0..%d", header, size)
		}
		e := size - 1
		if last != "" {
			if e, perr = strconv.ParseInt(last, 10, 64); perr != nil || e < s {
				return 0, 0, false, fmt.Errorf("invalid range %q", header)
			}
			e = min(e, size-1)
		}
		return s, e - s + 1, true, nil
	}
}

// whoami names the caller and its role (the console shows only the
// controls the role may use).
func whoami(w http.ResponseWriter, _ *http.Request, p Principal) error {
	WriteJSON(w, http.StatusOK, map[string]string{"name": p.Name, "role": p.Role.String()})
	return nil
}

func (a *API) listModels(w http.ResponseWriter, r *http.Request, _ Principal) error {
	limit, err := intParam(r, "limit")
	if err != nil {
		return err
	}
	names, next, err := a.reg.ListModels(r.Context(), r.URL.Query().Get("page_token"), limit)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, map[string]any{"models": nonNil(names), "next_page_token": next})
	return nil
}

func (a *API) listVersions(w http.ResponseWriter, r *http.Request, _ Principal) error {
	limit, err := intParam(r, "limit")
	if err != nil {
		return err
	}
	vs, next, err := a.reg.ListVersions(r.Context(), r.PathValue("name"), r.URL.Query().Get("page_token"), limit)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, map[string]any{"versions": nonNil(vs), "next_page_token": next})
	return nil
}

func (a *API) createVersion(w http.ResponseWriter, r *http.Request, p Principal) error {
	name, version := r.PathValue("name"), r.PathValue("version")
	var nv wire.NewVersion
	if err := ReadJSON(r, 64<<10, &nv); err != nil {
		return err
	}
	v, created, err := a.reg.CreateVersion(r.Context(), name, version, p.Name, nv)
	entry := wire.AuditEntry{Actor: p.Name, Role: p.Role.String(), Action: "publish", Model: name, Version: version,
		Digest: nv.Digest, RequestID: RequestID(r.Context()), Result: "ok"}
	if err != nil {
		publishFailed.Inc()
		entry.Result, entry.Detail = "refused", err.Error()
		if StatusOf(err) >= 500 {
			entry.Result = "error"
		}
		_, _ = a.reg.Audit(r.Context(), entry) // a failure is logged and counted; the refusal stands
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
		publishOK.Inc()
		if _, err := a.reg.Audit(r.Context(), entry); err != nil {
			return Unaudited(fmt.Sprintf("version %s/%s was created", name, version), err)
		}
	}
	WriteJSON(w, code, v)
	return nil
}

func (a *API) getVersion(w http.ResponseWriter, r *http.Request, _ Principal) error {
	v, err := a.reg.GetVersion(r.Context(), r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		return err
	}
	w.Header().Set("ETag", `"`+v.Digest+`"`)
	WriteJSON(w, http.StatusOK, v)
	return nil
}

// editVersion is PATCH: labels and description, audited as
// edit_version; the artifact never changes.
func (a *API) editVersion(w http.ResponseWriter, r *http.Request, p Principal) error {
	name, version := r.PathValue("name"), r.PathValue("version")
	var e wire.VersionEdit
	if err := ReadJSON(r, 64<<10, &e); err != nil {
		return err
	}
	v, err := a.reg.EditVersion(r.Context(), name, version, p.Name, e)
	entry := wire.AuditEntry{Actor: p.Name, Role: p.Role.String(), Action: "edit_version", Model: name, Version: version,
		RequestID: RequestID(r.Context()), Result: "ok", Detail: editDetail(e)}
	if err != nil {
		entry.Result, entry.Detail = "refused", err.Error()
		if StatusOf(err) >= 500 {
			entry.Result = "error"
		}
		_, _ = a.reg.Audit(r.Context(), entry) // a failure is logged and counted; the refusal stands
		return err
	}
	entry.Digest = v.Digest
	if _, err := a.reg.Audit(r.Context(), entry); err != nil {
		return Unaudited(fmt.Sprintf("version %s/%s was edited", name, version), err)
	}
	WriteJSON(w, http.StatusOK, v)
	return nil
}

// editDetail says what an edit changed, for the audit trail.
func editDetail(e wire.VersionEdit) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(e.Labels)) {
		if v := e.Labels[k]; v == nil {
			parts = append(parts, "-"+k)
		} else {
			parts = append(parts, k+"="+*v)
		}
	}
	if e.Description != nil {
		parts = append(parts, "description")
	}
	return "edited " + strings.Join(parts, " ")
}

func (a *API) deleteVersion(w http.ResponseWriter, r *http.Request, p Principal) error {
	name, version := r.PathValue("name"), r.PathValue("version")
	v, err := a.reg.DeleteVersion(r.Context(), name, version)
	entry := wire.AuditEntry{Actor: p.Name, Role: p.Role.String(), Action: "delete", Model: name, Version: version,
		Digest: v.Digest, RequestID: RequestID(r.Context()), Result: "ok"}
	if err != nil {
		entry.Result, entry.Detail = "refused", err.Error()
		_, _ = a.reg.Audit(r.Context(), entry) // a failure is logged and counted; the refusal stands
		return err
	}
	if _, err := a.reg.Audit(r.Context(), entry); err != nil {
		return Unaudited(fmt.Sprintf("version %s/%s was deleted", name, version), err)
	}
	WriteJSON(w, http.StatusOK, map[string]any{"deleted": v})
	return nil
}

func (a *API) listChannels(w http.ResponseWriter, r *http.Request, _ Principal) error {
	cs, err := a.reg.ListChannels(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, map[string]any{"channels": nonNil(cs)})
	return nil
}

// blockingParams reads Consul-style ?index=N&wait=30s.
func blockingParams(r *http.Request) (uint64, time.Duration, error) {
	q := r.URL.Query()
	var index uint64
	if s := q.Get("index"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%w: index %q is not a revision number", wire.ErrInvalid, s)
		}
		index = n
	}
	wait := 30 * time.Second
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			secs, serr := strconv.Atoi(s)
			if serr != nil {
				return 0, 0, fmt.Errorf("%w: wait %q is not a duration such as 30s", wire.ErrInvalid, s)
			}
			d = time.Duration(secs) * time.Second
		}
		if d < 0 {
			return 0, 0, fmt.Errorf("%w: negative wait", wire.ErrInvalid)
		}
		wait = min(d, MaxWait)
	}
	return index, wait, nil
}

// waitChannel is a blocking read of a channel for p: at most
// MaxWatchesPerClient of one client's and MaxWatchesPerToken of one
// token's blocking reads wait at once on this replica (429 past that);
// reads with no index answer at once.
func (a *API) waitChannel(r *http.Request, p Principal, index uint64, wait time.Duration) (wire.Channel, error) {
	if index > 0 && wait > 0 {
		release, err := a.holdWatch(r, p)
		if err != nil {
			return wire.Channel{}, err
		}
		defer release()
	}
	return a.reg.WaitChannel(r.Context(), r.PathValue("name"), r.PathValue("channel"), index, wait)
}

// holdWatch takes one of the blocking reads the caller may hold at once
// (per token at its address, and per token).
func (a *API) holdWatch(r *http.Request, p Principal) (release func(), err error) {
	client := p.Name + " " + clientOf(r.RemoteAddr).String()
	if !a.watches.Acquire(client, a.reg.cfg.MaxWatchesPerClient) {
		return nil, httperr.New(http.StatusTooManyRequests, "more than %d blocking reads at once for this token from this address", a.reg.cfg.MaxWatchesPerClient)
	}
	if !a.watches.Acquire(p.Name, a.reg.cfg.MaxWatchesPerToken) {
		a.watches.Release(client)
		return nil, httperr.New(http.StatusTooManyRequests, "more than %d blocking reads at once for this token", a.reg.cfg.MaxWatchesPerToken)
	}
	return func() { a.watches.Release(p.Name); a.watches.Release(client) }, nil
}

// clientOf is the address of a request's peer, IPv6 by /64 (which one
// host usually holds).
func clientOf(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	a := ap.Addr().WithZone("").Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		a = p.Addr()
	}
	return a
}

func (a *API) getChannel(w http.ResponseWriter, r *http.Request, p Principal) error {
	index, wait, err := blockingParams(r)
	if err != nil {
		return err
	}
	c, err := a.waitChannel(r, p, index, wait)
	if err != nil {
		return err
	}
	w.Header().Set("X-Registry-Index", strconv.FormatUint(c.Revision, 10))
	WriteJSON(w, http.StatusOK, c)
	return nil
}

func (a *API) resolve(w http.ResponseWriter, r *http.Request, p Principal) error {
	index, wait, err := blockingParams(r)
	if err != nil {
		return err
	}
	region := r.URL.Query().Get("region")
	if region != "" {
		if err := wire.ValidateName("region", region); err != nil {
			return err
		}
	}
	model, channel := r.PathValue("name"), r.PathValue("channel")
	var res wire.Resolution
	if index > 0 && wait > 0 {
		// A long-poll: woken with the rest of the fleet, it is answered
		// from the replica's read cache.
		release, err := a.holdWatch(r, p)
		if err != nil {
			return err
		}
		defer release()
		rev, err := a.reg.waitRevision(r.Context(), model, channel, index, wait)
		if err != nil {
			return err
		}
		res, err = a.reg.cachedResolution(r.Context(), model, channel, region, rev)
		if err != nil {
			return err
		}
	} else if res, err = a.reg.Resolve(r.Context(), model, channel, region); err != nil {
		return err
	}
	w.Header().Set("X-Registry-Index", strconv.FormatUint(res.Revision, 10))
	WriteJSON(w, http.StatusOK, res)
	return nil
}

func intParam(r *http.Request, name string) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s %q is not a non-negative integer", wire.ErrInvalid, name, s)
	}
	return n, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
