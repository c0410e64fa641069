package graphresolver_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/resolver/graphresolver"
	"github.com/chatico/mapper/testing/mappertest"
)

const token = "EAAG-secret-token"

func TestResolveOwner(t *testing.T) {
	g := mappertest.NewGraphAPI(token)
	t.Cleanup(g.Close)
	g.SetOwner("100", "17841400000000001")
	g.SetError("401", mappertest.GraphError{HTTPStatus: 400, Code: 4, Message: "Application request limit reached"})
	g.SetError("402", mappertest.GraphError{HTTPStatus: 400, Code: 80002, Message: "too many calls",
		Header: http.Header{"X-Business-Use-Case-Usage": {`{"17841400000000001":[{"type":"instagram","call_count":100,"total_cputime":20,"total_time":20,"estimated_time_to_regain_access":7}]}`}}})
	g.SetError("403", mappertest.GraphError{HTTPStatus: 400, Code: 190, Subcode: 463, Message: "Error validating access token: Session has expired"})
	g.SetError("404", mappertest.GraphError{HTTPStatus: 500, Code: 2, Message: "Service temporarily unavailable"})
	g.SetError("405", mappertest.GraphError{HTTPStatus: 403, Code: 10, Message: "Application does not have permission"})
	r, err := graphresolver.New(token, graphresolver.WithBaseURL(g.URL()), graphresolver.WithVersion("v26.0"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		media                       string
		wantOwner                   string
		wantNotFound, wantTemporary bool
		wantAfter                   time.Duration
		wantCode                    int
	}{
		{media: "100", wantOwner: "17841400000000001"},
		{media: "999", wantNotFound: true, wantCode: 100},
		{media: "401", wantTemporary: true, wantCode: 4},
		{media: "402", wantTemporary: true, wantCode: 80002, wantAfter: 7 * time.Minute},
		{media: "403", wantCode: 190},
		{media: "404", wantTemporary: true, wantCode: 2},
		{media: "405", wantCode: 10},
		{media: "../me", wantNotFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.media, func(t *testing.T) {
			owner, err := r.ResolveOwner(context.Background(), tt.media)
			if tt.wantOwner != "" {
				if err != nil || owner != tt.wantOwner {
					t.Fatalf("owner %q err %v", owner, err)
				}
				return
			}
			var ge *graphresolver.Error
			if !errors.As(err, &ge) {
				t.Fatalf("error %T %v", err, err)
			}
			if ge.MediaNotFound() != tt.wantNotFound || ge.Temporary() != tt.wantTemporary || ge.RetryAfter() != tt.wantAfter || ge.Code != tt.wantCode {
				t.Errorf("%v: notFound %v temporary %v after %v code %d", err, ge.MediaNotFound(), ge.Temporary(), ge.RetryAfter(), ge.Code)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("token in error: %v", err)
			}
		})
	}
	if g.CallsFor("../me") != 0 {
		t.Error("an invalid ID was sent")
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	r, err := graphresolver.New(token, graphresolver.WithBaseURL("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.ResolveOwner(context.Background(), "100")
	var ge *graphresolver.Error
	if !errors.As(err, &ge) || !ge.Temporary() {
		t.Fatalf("network error %v not temporary", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatalf("token leaked: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, f := range map[string]func() error{
		"empty token": func() error { _, err := graphresolver.New(""); return err },
		"bad URL": func() error {
			_, err := graphresolver.New("t", graphresolver.WithBaseURL("graph.facebook.com"))
			return err
		},
		"bad version": func() error { _, err := graphresolver.New("t", graphresolver.WithVersion("25")); return err },
	} {
		if f() == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// The Mapper classifies graphresolver's errors through their methods.
var (
	_ mapper.OwnerResolver                    = (*graphresolver.Resolver)(nil)
	_ interface{ MediaNotFound() bool }       = (*graphresolver.Error)(nil)
	_ interface{ RetryAfter() time.Duration } = (*graphresolver.Error)(nil)
)
