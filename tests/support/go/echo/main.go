// An NDJSON echo on Go's net/http (standard library only), the upstream for wsproxy's Go tests.
//
//	POST /echo             each request line back at once as {"echo": <line>}, flushed per line
//	GET  /stream?count=N   {"n": 0} ... {"n": N-1}
//	GET  /forever          {"n": 0}, then the response stays open until the client leaves
//	GET  /active           {"open": N}: /echo and /forever handlers still running
//	GET  /firehose?count=N N lines of about 1 KiB, as fast as the client takes them
//	GET  /firehose-sent    {"sent": N}: lines the last /firehose has written so far
//
// Prints its port on stdout, then serves: HTTP/1.1, or with -cert/-key TLS where Go's server
// offers HTTP/2 by ALPN (its default).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

var open, firehoseSent int64

func writeLine(w http.ResponseWriter, v interface{}) error {
	line, _ := json.Marshal(v)
	if _, err := w.Write(append(line, '\n')); err != nil {
		return err
	}
	w.(http.Flusher).Flush()
	return nil
}

func echo(w http.ResponseWriter, r *http.Request) {
	atomic.AddInt64(&open, 1)
	defer atomic.AddInt64(&open, -1)
	w.Header().Set("Content-Type", "application/x-ndjson")
	// The head goes out with the first reply: had it been flushed before the body was read, Go
	// would discard the unread body of a keep-alive request (see wsproxy/_upstream_request.py).
	scanner := bufio.NewScanner(r.Body)
	for scanner.Scan() {
		if len(scanner.Bytes()) == 0 {
			continue
		}
		if err := writeLine(w, map[string]json.RawMessage{"echo": json.RawMessage(scanner.Bytes())}); err != nil {
			return
		}
	}
}

func stream(w http.ResponseWriter, r *http.Request) {
	count, err := strconv.Atoi(r.URL.Query().Get("count"))
	if err != nil {
		count = 3
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	for n := 0; n < count; n++ {
		if writeLine(w, map[string]int{"n": n}) != nil {
			return
		}
	}
}

func forever(w http.ResponseWriter, r *http.Request) {
	atomic.AddInt64(&open, 1)
	defer atomic.AddInt64(&open, -1)
	w.Header().Set("Content-Type", "application/x-ndjson")
	if writeLine(w, map[string]int{"n": 0}) != nil {
		return
	}
	<-r.Context().Done()
}

func firehose(w http.ResponseWriter, r *http.Request) {
	count, err := strconv.Atoi(r.URL.Query().Get("count"))
	if err != nil {
		count = 1000
	}
	atomic.StoreInt64(&firehoseSent, 0)
	w.Header().Set("Content-Type", "application/x-ndjson")
	padding := strings.Repeat("x", 1000)
	for n := 0; n < count; n++ {
		line, _ := json.Marshal(map[string]interface{}{"n": n, "padding": padding})
		if _, err := w.Write(append(line, '\n')); err != nil {
			return
		}
		atomic.AddInt64(&firehoseSent, 1)
	}
}

func sent(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	writeLine(w, map[string]int64{"sent": atomic.LoadInt64(&firehoseSent)})
}

func active(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	writeLine(w, map[string]int64{"open": atomic.LoadInt64(&open)})
}

func main() {
	cert := flag.String("cert", "", "TLS certificate (serves HTTP/2 and HTTP/1.1 over TLS)")
	key := flag.String("key", "", "TLS key")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", echo)
	mux.HandleFunc("/stream", stream)
	mux.HandleFunc("/forever", forever)
	mux.HandleFunc("/active", active)
	mux.HandleFunc("/firehose", firehose)
	mux.HandleFunc("/firehose-sent", sent)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	server := &http.Server{Handler: mux}
	if *cert != "" {
		err = server.ServeTLS(ln, *cert, *key)
	} else {
		err = server.Serve(ln)
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
