package relay_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/keel-relay/keel/relay/config"
	"github.com/keel-relay/keel/relay/relaytest"
)

// TestEdgeReflectionSwitch: edge.reflection reaches the relay's edge listener: auto on a
// loopback listen serves the reflection API, false refuses it with Unimplemented.
func TestEdgeReflectionSwitch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sw     config.AutoBool
		wantOK bool
	}{
		{"auto on loopback", config.SwitchAuto, true},
		{"off", config.SwitchOff, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cfg := relaytest.Config(t, t.TempDir(), "root", relaytest.NodeMap())
			cfg.Edge.Reflection = tc.sw
			r := relaytest.Start(t, cfg)
			conn, err := grpc.NewClient("passthrough:///"+r.EdgeAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&reflectionpb.ServerReflectionRequest{
				MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: "*"},
			}); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if !tc.wantOK {
				if grpcstatus.Code(err) != codes.Unimplemented {
					t.Fatalf("got %v, %v; want Unimplemented", resp, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := len(resp.GetListServicesResponse().GetService()); n < 3 {
				t.Fatalf("%d services listed: %v", n, resp)
			}
		})
	}
}
