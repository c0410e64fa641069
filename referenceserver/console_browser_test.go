package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatico/mapper/internal/browsertest"
	"github.com/chatico/mapper/testing/mappertest"
)

// TestConsoleInBrowser drives the console in Chromium through a real
// reference server, as an operator would: a wrong token is refused, the
// right one signs in; an app is created (after the API's complaints are shown
// by their fields); a signed webhook shows in the live tail and the events
// list and its detail, with a stranger's HTML comment as text; a delivery
// the app refuses for good goes dead and a replay from the dead letters
// delivers it. No page reaches outside the server and no dialog opens.
//
// With MAPPER_SCREENSHOTS set to a directory, the overview and event detail
// screenshots are also written there (the README's come from this test).
func TestConsoleInBrowser(t *testing.T) {
	const (
		token   = "console-admin-token"
		secret  = "console-meta-secret"
		account = "17841400000000001"
		xss     = `<img src=x onerror=alert(1)>`
	)
	worker := mappertest.NewWorkerApp("console-worker-secret-0123")
	t.Cleanup(worker.Close)
	base, stop := startServer(t, "INSTAGRAM_APP_SECRET="+secret+"\nWEBHOOK_VERIFY_TOKEN=v\nOWNER_POLICY=entry\nADMIN_TOKEN="+token+
		"\nSECRET_KEY=console-secret-key-0123456789\nSQLITE_PATH="+filepath.Join(t.TempDir(), "mapper.db")+"\n", nil)
	t.Cleanup(stop)
	ctx := browsertest.Start(t, base)
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			browsertest.Screenshot(t, ctx, "failed.png")
			t.Fatalf("%s: %v", step, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	send := func(commentID, comment string) {
		t.Helper()
		resp, err := http.DefaultClient.Do(mappertest.NewWebhook().Comment(account, "18000000000000001", commentID, comment).Request(base+"/webhook/", secret))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("webhook: %v %v", err, resp)
		}
		resp.Body.Close()
	}

	// Sign in: a wrong token first.
	run("sign-in page", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=token]`), "not-the-token"), chromedp.Submit(chromedp.CSS(`input[name=token]`)),
		chromedp.WaitVisible(chromedp.CSS(`#wrong-token`)))
	run("sign in", chromedp.SendKeys(chromedp.CSS(`input[name=token]`), token), chromedp.Submit(chromedp.CSS(`input[name=token]`)),
		chromedp.WaitVisible(chromedp.CSS(`#health-status`)))
	if s := text("#health-status"); s != "ok" {
		t.Errorf("health on the overview: %q", s)
	}

	// Create an app: the API's complaints show by their fields first.
	run("new app", chromedp.Navigate(base+"/console/apps/new"), chromedp.WaitVisible(chromedp.CSS(`#app-form`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=name]`), "shop"),
		chromedp.SendKeys(chromedp.CSS(`input[name=url]`), "ftp://worker"),
		chromedp.SendKeys(chromedp.CSS(`input[name=secret]`), "short"),
		chromedp.SendKeys(chromedp.CSS(`textarea[name=account_ids]`), account),
		chromedp.Submit(chromedp.CSS(`#app-form`)), chromedp.WaitVisible(chromedp.CSS(`.field-error[data-field=url]`)))
	if s := text(`.field-error[data-field=secret]`); !strings.Contains(s, "16") {
		t.Errorf("the secret's error: %q", s)
	}
	browsertest.Screenshot(t, ctx, "console-app-errors.png")
	run("fix the app", chromedp.SetValue(chromedp.CSS(`input[name=url]`), worker.URL()),
		chromedp.SendKeys(chromedp.CSS(`input[name=secret]`), worker.Secret()),
		chromedp.Submit(chromedp.CSS(`#app-form`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if s := text(".flash"); !strings.Contains(s, "created") {
		t.Errorf("after create: %q", s)
	}
	browsertest.Screenshot(t, ctx, "console-app.png")

	// The live tail shows a webhook as it arrives.
	run("live tail", chromedp.Navigate(base+"/console/tail"), chromedp.WaitReady(chromedp.CSS(`#tail`)))
	waitText(t, ctx, "#tail-state", "live")
	send("17900000000000001", xss)
	run("tail row", chromedp.WaitVisible(chromedp.CSS(`#tail tr a`)))
	eventID := text("#tail tr a")
	if !strings.HasPrefix(eventID, "evt_") {
		t.Fatalf("tail row links %q", eventID)
	}
	browsertest.Screenshot(t, ctx, "console-tail.png")
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := worker.WaitFor(wctx, 1); err != nil {
		t.Fatal(err)
	}

	// The events list, then the detail: the comment is text, not markup.
	run("events", chromedp.Navigate(base+"/console/events"), chromedp.WaitVisible(chromedp.CSS(`#events`)),
		chromedp.Click(chromedp.CSS(`#events a[href$="`+eventID+`"]`)), chromedp.WaitVisible(chromedp.CSS(`#payload`)))
	if s := text("#payload"); !strings.Contains(s, xss) {
		t.Errorf("the payload does not show the comment as text: %q", s)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('main img').length`)); err != nil || n != 0 {
		t.Errorf("images on the event page: %d %v", n, err)
	}
	reload(t, ctx, `.delivery .status-delivered`)
	eventShot := browsertest.Screenshot(t, ctx, "console-event.png")

	// A delivery the app refuses for good goes dead; replaying it from
	// the dead letters delivers it.
	worker.Respond(func(*http.Request) int { return http.StatusGone })
	send("17900000000000002", "refused for now")
	run("dead letters", chromedp.Navigate(base+"/console/dead"), chromedp.WaitVisible(chromedp.CSS(`#dead`)))
	reload(t, ctx, `#dead input[name=id]`)
	browsertest.Screenshot(t, ctx, "console-dead.png")
	worker.Respond(nil)
	run("replay", chromedp.Click(chromedp.CSS(`#dead thead input[type=checkbox]`)), chromedp.Submit(chromedp.CSS(`#replay-selected`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if s := text(".flash"); s != "Replayed 1 dead delivery." {
		t.Errorf("after the replay: %q", s)
	}
	if _, err := worker.WaitFor(wctx, 3); err != nil {
		t.Fatal(err)
	}
	run("delivered", chromedp.Navigate(base+"/console/events?status=delivered"), chromedp.WaitVisible(chromedp.CSS(`#events`)))
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#events tbody a').length`)); err != nil || n != 2 {
		t.Errorf("%d delivered events listed, want both (%v)", n, err)
	}
	run("overview", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS(`.charts`)))
	overviewShot := browsertest.Screenshot(t, ctx, "console-overview.png")
	if dir := os.Getenv("MAPPER_SCREENSHOTS"); dir != "" {
		for _, p := range []string{overviewShot, eventShot, filepath.Join(t.ArtifactDir(), "console-app.png"), filepath.Join(t.ArtifactDir(), "console-dead.png"),
			filepath.Join(t.ArtifactDir(), "console-tail.png"), filepath.Join(t.ArtifactDir(), "console-app-errors.png")} {
			if b, err := os.ReadFile(p); err == nil {
				_ = os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644)
			}
		}
	}
}

// waitText waits until the element's text is want.
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got, _ = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if got == want {
			return
		}
	}
	t.Fatalf("%s says %q, want %q", sel, got, want)
}

// reload reloads the page until sel is on it: the server-rendered pages
// show the state when they were loaded.
func reload(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+"`"+sel+"`"+`).length`))
		if err == nil && n > 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
		if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("%s never showed", sel)
}
