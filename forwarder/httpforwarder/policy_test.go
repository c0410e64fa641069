package httpforwarder_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/chatico/mapper/forwarder/httpforwarder"
)

func TestDialPolicyCheck(t *testing.T) {
	t.Parallel()
	ten := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		addr   string
		policy httpforwarder.DialPolicy
		ok     bool
	}{
		{"169.254.169.254", httpforwarder.DialPolicy{}, false},
		{"::ffff:169.254.169.254", httpforwarder.DialPolicy{}, false},
		{"fe80::1", httpforwarder.DialPolicy{}, false},
		{"0.0.0.0", httpforwarder.DialPolicy{}, false},
		{"0.1.2.3", httpforwarder.DialPolicy{}, false},
		{"::", httpforwarder.DialPolicy{}, false},
		{"224.0.0.1", httpforwarder.DialPolicy{}, false},
		{"ff02::1", httpforwarder.DialPolicy{}, false},
		{"255.255.255.255", httpforwarder.DialPolicy{}, false},
		{"169.254.169.254", httpforwarder.DialPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}, false}, // never allowed
		{"127.0.0.1", httpforwarder.DialPolicy{}, true},
		{"::1", httpforwarder.DialPolicy{}, true},
		{"10.1.2.3", httpforwarder.DialPolicy{}, true},
		{"192.168.1.1", httpforwarder.DialPolicy{}, true},
		{"8.8.8.8", httpforwarder.DialPolicy{}, true},
		{"10.1.2.3", httpforwarder.DialPolicy{Deny: ten}, false},
		{"127.0.0.1", httpforwarder.DialPolicy{Allow: ten}, false},
		{"10.9.9.9", httpforwarder.DialPolicy{Allow: ten}, true},
	} {
		err := tc.policy.Check(netip.MustParseAddr(tc.addr))
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, httpforwarder.ErrAddressRefused)) {
			t.Errorf("%s under %+v: %v, want ok=%v", tc.addr, tc.policy, err, tc.ok)
		}
	}
}

func TestDialPolicyURLs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		url    string
		policy httpforwarder.DialPolicy
		ok     bool
	}{
		{"http://169.254.169.254/latest/meta-data/", httpforwarder.DialPolicy{}, false},
		{"http://[fe80::1%25eth0]:80/", httpforwarder.DialPolicy{}, false},
		{"http://[::1]:8080/", httpforwarder.DialPolicy{}, true},
		{"http://127.0.0.1:2375/", httpforwarder.DialPolicy{}, true},
		{"http://127.0.0.1:2375/", httpforwarder.DialPolicy{Deny: loopback}, false},
		{"http://localhost:1/", httpforwarder.DialPolicy{Deny: loopback}, false}, // by resolution
		{"http://no-such-host.invalid/", httpforwarder.DialPolicy{}, true},       // checked at every dial
		{"ftp://127.0.0.1/", httpforwarder.DialPolicy{}, false},
	} {
		if err := tc.policy.CheckURL(ctx, tc.url); (err == nil) != tc.ok {
			t.Errorf("%s under %+v: %v, want ok=%v", tc.url, tc.policy, err, tc.ok)
		}
	}
}

// A refused address is a final failure, checked on the address dialed:
// a name resolving to it is caught at the dial, and nothing is sent.
func TestForwardRefusedAddress(t *testing.T) {
	t.Parallel()
	hits := 0
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer app.Close()
	onlyTen := httpforwarder.New(httpforwarder.WithDialPolicy(httpforwarder.DialPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}))
	for _, u := range []string{
		"http://169.254.169.254/latest/meta-data/",                  // literal, refused before dialing
		strings.Replace(app.URL, "127.0.0.1", "localhost", 1) + "/", // a name, refused at the dial
	} {
		res := onlyTen.Forward(context.Background(), httpforwarder.Request{URL: u, Secret: "s", Body: []byte("{}")})
		if !errors.Is(res.Err, httpforwarder.ErrAddressRefused) || res.Retryable || res.StatusCode != 0 {
			t.Errorf("%s: %+v, want a final refusal", u, res)
		}
	}
	if hits != 0 {
		t.Errorf("the app got %d requests", hits)
	}
	// The default policy lets loopback through.
	if res := httpforwarder.New().Forward(context.Background(), httpforwarder.Request{URL: app.URL, Secret: "s"}); !res.Delivered() {
		t.Errorf("loopback under the default policy: %+v", res)
	}
}

func TestParsePrefixes(t *testing.T) {
	t.Parallel()
	got, err := httpforwarder.ParsePrefixes(" 10.0.0.0/8, 192.168.1.5 ,fd00::/8,")
	if err != nil || len(got) != 3 || got[1].String() != "192.168.1.5/32" {
		t.Errorf("%v %v", got, err)
	}
	if _, err := httpforwarder.ParsePrefixes("10.0.0.0/33"); err == nil {
		t.Error("a bad prefix was read")
	}
}
