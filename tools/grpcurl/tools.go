//go:build tools

// Package grpcurl pins grpcurl (MIT), the command-line gRPC client whose
// calls docs/EDGE.md shows and TestGRPCExamples runs against the edge.
package grpcurl

import _ "github.com/fullstorydev/grpcurl/cmd/grpcurl"
