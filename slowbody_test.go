package mapper_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/testing/mappertest"
)

// startPost sends a signed webhook's headers and the first n bytes of its
// body over a raw connection, and leaves the rest unsent.
func startPost(t *testing.T, addr string, body []byte, n int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /webhook/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Hub-Signature-256: %s\r\nContent-Length: %d\r\n\r\n",
		mappertest.Sign(metaSecret, body), len(body))
	if _, err := c.Write(body[:n]); err != nil {
		t.Fatal(err)
	}
	return c
}

func readStatus(t *testing.T, c net.Conn) (int, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A body that does not come (a Content-Length larger than what is sent)
// is a 408 once the body deadline passes, not a connection held for a
// minute.
func TestSlowBodyIs408(t *testing.T) {
	t.Parallel()
	h := newHarness(t, mapper.WithBodyTimeout(200*time.Millisecond))
	body := mappertest.NewWebhook().Comment(accountA, "1", "slow", "x").Bytes()
	c := startPost(t, strings.TrimPrefix(h.srv.URL, "http://"), body, 10)
	start := time.Now()
	code, raw := readStatus(t, c)
	if code != http.StatusRequestTimeout || !strings.Contains(raw, "slow-body") || time.Since(start) > 5*time.Second {
		t.Errorf("%d after %v: %s", code, time.Since(start), raw)
	}
	if n := h.metrics().Counters.Webhooks["slow_body"]; n != 1 {
		t.Errorf("slow_body counted %d times", n)
	}
}

// Bodies in flight share a budget: beyond it, a webhook is a 503 with
// Retry-After, and once the others are done it is taken again.
func TestBodyBudget(t *testing.T) {
	t.Parallel()
	h := newHarness(t, mapper.WithMaxBodyBytes(64<<10, 100<<10), mapper.WithBodyTimeout(10*time.Second))
	big := mappertest.NewWebhook().Comment(accountA, "1", "big", strings.Repeat("x", 60<<10)).Bytes()
	addr := strings.TrimPrefix(h.srv.URL, "http://")
	// The first holds 60 KiB of the 100 once its handler runs, which is
	// seen when it has not answered a moment later (refused, it would
	// have: a refusal does not wait for the body).
	var first net.Conn
	for {
		first = startPost(t, addr, big, 100)
		time.Sleep(50 * time.Millisecond)
		_ = first.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := first.Read(make([]byte, 1)); err != nil {
			_ = first.SetReadDeadline(time.Time{})
			break // still reading its body: it holds its share
		}
		first.Close()
	}
	other := mappertest.NewWebhook().Comment(accountA, "1", "other", strings.Repeat("x", 60<<10)).Bytes()
	code, raw := readStatus(t, startPost(t, addr, other, len(other))) // wants 60 more
	if code != http.StatusServiceUnavailable || !strings.Contains(raw, "busy") {
		t.Fatalf("over the budget: %d %s", code, raw)
	}
	if _, err := first.Write(big[100:]); err != nil {
		t.Fatal(err)
	}
	if code, raw := readStatus(t, first); code != http.StatusOK {
		t.Fatalf("the first: %d %s", code, raw)
	}
	// Once the first is stored and routed, its share is free again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _, rawAfter := h.post(mappertest.NewWebhook().Comment(accountA, "1", "after", strings.Repeat("y", 60<<10)).Bytes(), metaSecret)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("after the first was done: %d %s", resp.StatusCode, rawAfter)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := h.metrics().Counters.Webhooks["busy"]; n < 1 {
		t.Errorf("busy counted %d times", n)
	}
}
