package mapper_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// browser starts a headless Chromium (Debian's chromium) for a test, and
// fails the test if a page asks for anything outside base: the pages must
// work with no network. Without chromium the test skips, with one line,
// unless MAPPER_TEST_REQUIRE_BROWSER=1 (as in .ci/run).
func browser(t *testing.T, base string) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("MAPPER_TEST_REQUIRE_BROWSER") == "1" {
			t.Fatal("no chromium, and MAPPER_TEST_REQUIRE_BROWSER=1")
		}
		t.Skip("no chromium on this machine: the browser tests skip (apt-get install chromium to run them)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("headless", "new"), chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	// Requests to other hosts must not leave the browser: the pages'
	// Content-Security-Policy blocks any the bundles make (ReDoc asks a CDN
	// for its logo).
	var mu sync.Mutex
	outside := map[network.RequestID]string{}
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			u := e.Request.URL
			if !strings.HasPrefix(u, base) && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "blob:") {
				outside[e.RequestID] = u
			}
		case *network.EventLoadingFailed:
			if e.BlockedReason == network.BlockedReasonCsp {
				delete(outside, e.RequestID)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, u := range outside {
			t.Errorf("the page reached outside the server: %s", u)
		}
	})
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// screenshot saves the page to the test's artifact directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(80))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(t.ArtifactDir(), name), png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
	}
}

// TestDocsRenderInBrowser: Swagger UI and ReDoc render the served document
// in Chromium, from the binary alone.
func TestDocsRenderInBrowser(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	t.Run("swagger-ui", func(t *testing.T) {
		ctx := browser(t, h.srv.URL)
		if err := chromedp.Do(ctx, chromedp.Navigate(h.srv.URL+"/docs"), chromedp.WaitVisible(chromedp.CSS(".swagger-ui .info .title")),
			chromedp.WaitVisible(chromedp.CSS(".opblock"))); err != nil {
			t.Fatal(err)
		}
		title, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".swagger-ui .info .title")))
		if err != nil {
			t.Fatal(err)
		}
		ops, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('.opblock').length`))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(title, "mapper") || ops < 25 {
			t.Errorf("Swagger UI shows %q with %d operations", title, ops)
		}
		screenshot(t, ctx, "docs.png")
	})
	t.Run("redoc", func(t *testing.T) {
		ctx := browser(t, h.srv.URL)
		if err := chromedp.Do(ctx, chromedp.Navigate(h.srv.URL+"/redoc"), chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
			t.Fatal(err)
		}
		heading, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
		if err != nil {
			t.Fatal(err)
		}
		sections, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-section-id^="operation/"]').length`))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(heading, "mapper") || sections < 25 {
			t.Errorf("ReDoc shows %q with %d operations", heading, sections)
		}
		screenshot(t, ctx, "redoc.png")
	})
}
