package browsertest

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestWatcherSeesWhatPagesMustNotDo: the checks the browser tests rely on
// can fail. A page that opens a dialog and fetches from another host is
// caught doing both.
func TestWatcherSeesWhatPagesMustNotDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<!doctype html><title>bad</title><img src="http://elsewhere.invalid/x.png"><script>alert("injected")</script><p id=done>done</p>`))
	}))
	defer srv.Close()
	ctx, w := start(t, srv.URL)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL), chromedp.WaitReady(chromedp.CSS("#done"))); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && len(w.dialogMessages()) == 0; {
		time.Sleep(50 * time.Millisecond)
	}
	if got := w.dialogMessages(); !slices.Equal(got, []string{"injected"}) {
		t.Errorf("dialogs seen: %q", got)
	}
	if got := w.outsideURLs(); !slices.Contains(got, "http://elsewhere.invalid/x.png") {
		t.Errorf("outside requests seen: %q", got)
	}
}
