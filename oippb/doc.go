// Package oippb is the Open Inference Protocol's gRPC service and
// messages (inference.GRPCInferenceService), generated from
// grpc_predict_v2.proto with protoc-gen-go and protoc-gen-go-grpc (make
// proto). The edge serves it; the geo router forwards it; tests call it.
package oippb
