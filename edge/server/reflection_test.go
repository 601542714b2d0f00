package server

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

// TestReflection: with Options.Reflection a real client lists the edge listener's services
// through the reflection v1 API and gets cluster.proto's descriptor (what `grpcurl list` and
// `grpcurl describe` do); without it the reflection service is Unimplemented.
func TestReflection(t *testing.T) {
	t.Run("on", func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.Reflection = true })
		stream, err := reflectionpb.NewServerReflectionClient(h.conn).ServerReflectionInfo(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
			t.Helper()
			if err := stream.Send(req); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if e := resp.GetErrorResponse(); e != nil {
				t.Fatalf("reflection error: %d %s", e.ErrorCode, e.ErrorMessage)
			}
			return resp
		}
		resp := ask(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: "*"},
		})
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		for _, want := range []string{ServiceName, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
			if !slices.Contains(names, want) {
				t.Errorf("services %q: no %s", names, want)
			}
		}

		resp = ask(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: ServiceName},
		})
		files := resp.GetFileDescriptorResponse().GetFileDescriptorProto()
		if len(files) == 0 {
			t.Fatal("no file descriptor for " + ServiceName)
		}
		var fd descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(files[0], &fd); err != nil {
			t.Fatal(err)
		}
		if fd.GetName() != "cluster.proto" {
			t.Errorf("%s is in %q, want cluster.proto", ServiceName, fd.GetName())
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("off", func(t *testing.T) {
		h := newHarness(t, nil)
		stream, err := reflectionpb.NewServerReflectionClient(h.conn).ServerReflectionInfo(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: "*"},
		}); err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("reflection off: got %v, want Unimplemented", err)
		}
	})
}
