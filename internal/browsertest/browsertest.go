// Package browsertest starts a headless Chromium for tests that drive the
// server's pages (the API docs, the console) through chromedp.
package browsertest

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
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Start starts a headless Chromium (Debian's chromium) for a test, and
// fails the test if a page asks for anything outside base (the pages must
// work with no network) or opens a JavaScript dialog (none of ours does; a
// dialog means injected script ran). Without chromium the test skips, with
// one line, unless MAPPER_TEST_REQUIRE_BROWSER=1 (as in .ci/run).
func Start(t *testing.T, base string) context.Context {
	t.Helper()
	ctx, w := start(t, base)
	t.Cleanup(func() {
		for _, u := range w.outsideURLs() {
			t.Errorf("the page reached outside the server: %s", u)
		}
		for _, d := range w.dialogMessages() {
			t.Errorf("a JavaScript dialog opened: %q", d)
		}
	})
	return ctx
}

// watcher records what the pages did that they must not.
type watcher struct {
	mu      sync.Mutex
	outside map[network.RequestID]string
	dialogs []string
}

func (w *watcher) outsideURLs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, u := range w.outside {
		out = append(out, u)
	}
	return out
}

func (w *watcher) dialogMessages() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.dialogs...)
}

func start(t *testing.T, base string) (context.Context, *watcher) {
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
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	// Requests to other hosts must not leave the browser: the pages'
	// Content-Security-Policy blocks any the bundles make (ReDoc asks a CDN
	// for its logo).
	w := &watcher{outside: map[network.RequestID]string{}}
	if err := chromedp.Listen(ctx, func(ev any) {
		w.mu.Lock()
		defer w.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			u := e.Request.URL
			if !strings.HasPrefix(u, base) && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "blob:") {
				w.outside[e.RequestID] = u
			}
		case *network.EventLoadingFailed:
			if e.BlockedReason == network.BlockedReasonCsp {
				delete(w.outside, e.RequestID)
			}
		case *page.EventJavascriptDialogOpening:
			w.dialogs = append(w.dialogs, e.Message)
			// Close it, or the page would hang.
			go func() {
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			}()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	return ctx, w
}

// Screenshot saves the whole page as a PNG (quality 100: below it Chromium
// writes JPEG) to the test's artifact directory and
// returns the file's path ("" if it could not be taken).
func Screenshot(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	return path
}
