package agentuploads

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-relay/keel/internal/wire/uploadname"
)

// FuzzPutPath sends PUTs of any path below /reports/ through the router and the handler at
// the root, with good credentials: an upload is answered 2xx only for a name uploadname.Check
// accepts; what it writes is that name in reports/incoming and nothing else, anywhere.
func FuzzPutPath(f *testing.F) {
	for _, seed := range []string{reportName, "a/b", ".", "..", "../x", "", "/", "x\x00y", "uuid.hive", "a%2Fb", "..%2F..%2Fetc", "\\..\\x.log"} {
		f.Add(seed)
	}
	k := newKit(f, kitOptions{root: true})
	handler := k.srv.Config.Handler
	incoming := filepath.Join(k.rootDir, "reports", "incoming")
	f.Fuzz(func(t *testing.T, rest string) {
		req := &http.Request{
			Method: http.MethodPut, URL: &url.URL{Path: "/reports/" + rest}, Header: http.Header{},
			Body: io.NopCloser(strings.NewReader("x")), ContentLength: 1, RemoteAddr: "127.0.0.1:1",
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		}
		req.SetBasicAuth(acceptedUser, acceptedPass)
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		ok := w.Code == http.StatusCreated || w.Code == http.StatusNoContent
		if ok && uploadname.Check(rest) != nil {
			t.Fatalf("%q: %d for a name Check refuses", rest, w.Code)
		}
		if !ok && w.Code != http.StatusBadRequest {
			t.Fatalf("%q: %d %s", rest, w.Code, w.Body)
		}
		top, _ := os.ReadDir(k.rootDir)
		if len(top) > 1 {
			t.Fatalf("%q: root_dir holds %v", rest, top)
		}
		ents, _ := os.ReadDir(incoming)
		for _, e := range ents {
			if e.Name() != rest || !e.Type().IsRegular() {
				t.Fatalf("%q: reports/incoming holds %q", rest, e.Name())
			}
			if err := os.Remove(filepath.Join(incoming, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	})
}
