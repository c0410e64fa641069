package mapper_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/chatico/mapper/internal/browsertest"
)

// TestDocsRenderInBrowser: Swagger UI and ReDoc render the served document
// in Chromium, from the binary alone.
func TestDocsRenderInBrowser(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	t.Run("swagger-ui", func(t *testing.T) {
		ctx := browsertest.Start(t, h.srv.URL)
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
		browsertest.Screenshot(t, ctx, "docs.png")
	})
	t.Run("redoc", func(t *testing.T) {
		ctx := browsertest.Start(t, h.srv.URL)
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
		browsertest.Screenshot(t, ctx, "redoc.png")
	})
}
