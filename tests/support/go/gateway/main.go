// A grpc-gateway (v1, Debian's golang-github-grpc-ecosystem-grpc-gateway-dev) in front of the demo's
// gRPC service; prints the port it listens on, then serves until killed.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/grpc-ecosystem/grpc-gateway/runtime"
	"google.golang.org/grpc"

	examplepb "wsproxygw/examplepb"
)

func main() {
	grpcAddr := flag.String("grpc", "127.0.0.1:50051", "gRPC service address")
	flag.Parse()
	mux := runtime.NewServeMux()
	opts := []grpc.DialOption{grpc.WithInsecure()}
	if err := examplepb.RegisterEchoServiceHandlerFromEndpoint(context.Background(), mux, *grpcAddr, opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	fmt.Fprintln(os.Stderr, http.Serve(ln, mux))
}
