package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sentimentpro/sentiment/oippb"
)

// grpcRatios prints gRPC against REST at one edge (restInfer is its OIP
// infer URL) and gRPC through the geo router against gRPC direct. The two
// sides of each ratio take turns by phases (the gRPC loop is not
// fasthttp's).
func grpcRatios(restInfer, edgeGRPC, geoGRPC string, texts []string, rounds, conns int, warmup, duration time.Duration) {
	rest, overGRPC, rs := interleaved(rounds, "edge OIP infer, REST JSON", "edge OIP infer, gRPC",
		grpcTurns(restInfer, inferBodies(texts, false), edgeGRPC, texts, conns, warmup, duration))
	printRatio("grpc/rest", rest, overGRPC, rs, " (one text a call, the same concurrency, sides by phases)")
	direct, viaGeo, rs := interleaved(rounds, "edge gRPC direct", "geo router -> edge gRPC", func() (result, result) {
		return grpcLoop(edgeGRPC, texts, conns, warmup, duration), grpcLoop(geoGRPC, texts, conns, warmup, duration)
	})
	printRatio("geo-grpc/direct-grpc (shared cores)", direct, viaGeo, rs, " (sides by phases)")
}

// grpcTurns is a round of interleaved: REST's OIP infer at restURL, then
// the same texts as gRPC ModelInfer at grpcAddr, each a closed loop of
// conns calls at once for warmup+duration.
func grpcTurns(restURL string, rest []body, grpcAddr string, texts []string, conns int, warmup, duration time.Duration) func() (result, result) {
	return func() (result, result) {
		a := closedLoop(restURL, nil, rest, conns, warmup, duration)
		return a, grpcLoop(grpcAddr, texts, conns, warmup, duration)
	}
}

// grpcLoop keeps conns ModelInfer calls (one text each, typed contents)
// in flight over four connections for warmup+duration and measures the
// last duration.
func grpcLoop(addr string, texts []string, conns int, warmup, duration time.Duration) result {
	var clients []oippb.GRPCInferenceServiceClient
	for range 4 {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return result{failed: 1}
		}
		defer cc.Close()
		clients = append(clients, oippb.NewGRPCInferenceServiceClient(cc))
	}
	reqs := make([]*oippb.ModelInferRequest, len(texts))
	for i, t := range texts {
		reqs[i] = &oippb.ModelInferRequest{ModelName: "sentiment", Inputs: []*oippb.ModelInferRequest_InferInputTensor{{
			Name: "text", Datatype: "BYTES", Shape: []int64{1}, Contents: &oippb.InferTensorContents{BytesContents: [][]byte{[]byte(t)}}}}}
	}
	var measuring, stopping atomic.Bool
	parts := make([]result, conns)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := clients[w%len(clients)]
			lat := make([]time.Duration, 0, 1<<14)
			for i := w * 7919; !stopping.Load(); i++ {
				counted := measuring.Load()
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := client.ModelInfer(ctx, reqs[i%len(reqs)])
				cancel()
				d := time.Since(t0)
				if !counted {
					continue
				}
				if err != nil {
					parts[w].failed++
					continue
				}
				parts[w].ok++
				lat = append(lat, d)
			}
			parts[w].lat = lat
		}()
	}
	time.Sleep(warmup)
	measuring.Store(true)
	time.Sleep(duration)
	measuring.Store(false)
	stopping.Store(true)
	wg.Wait()
	return merge(parts, duration)
}
