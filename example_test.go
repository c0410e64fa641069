package mapper_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/storage/memstore"
	"github.com/chatico/mapper/testing/mappertest"
	"github.com/chatico/mapper/workerauth"
)

// Embed the Mapper in a service: mount its handler, run its loop.
func Example() {
	worker := mappertest.NewWorkerApp("worker-secret-0123456789") // stands in for your worker app
	defer worker.Close()

	store := memstore.New()
	m, err := mapper.New(store,
		mapper.WithMetaSecrets("meta-app-secret"),
		mapper.WithVerifyToken("verify-token"),
		mapper.WithOwnerPolicy(mapper.OwnerFromEntry), // no Graph API in this example
	)
	if err != nil {
		panic(err)
	}
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	srv := httptest.NewServer(m.Handler()) // or http.ListenAndServe(":8100", m.Handler())
	defer srv.Close()

	_ = store.CreateApp(ctx, &mapper.WorkerApp{Name: "shop", URL: worker.URL(), Secret: worker.Secret(),
		AccountIDs: []string{"17841400000000001"}, Enabled: true})

	// Meta posts a signed comment webhook…
	req := mappertest.NewWebhook().Comment("17841400000000001", "18000000000000001", "17900000000000001", "Hi!").
		Request(srv.URL+"/webhook/", "meta-app-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println("Meta got", resp.StatusCode)

	// …and the worker app receives it, signed with its own secret.
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	got, err := worker.WaitFor(wctx, 1)
	if err != nil {
		panic(err)
	}
	fmt.Println("worker got", got[0].Header.Get(workerauth.HeaderEnvelope), "bytes, signature ok:", got[0].SignatureOK)
	// Output:
	// Meta got 200
	// worker got original bytes, signature ok: true
}

// Mount Meta's routes and the admin API apart: the webhook on the public
// listener under a prefix, the admin API on a private listener.
func ExampleMapper_WebhookHandler() {
	m, err := mapper.New(memstore.New(),
		mapper.WithMetaSecrets("meta-app-secret"),
		mapper.WithVerifyToken("verify-token"),
		mapper.WithAdminToken("admin-token"),
	)
	if err != nil {
		panic(err)
	}
	defer m.Close()
	public := http.NewServeMux()
	public.Handle("/instagram/", http.StripPrefix("/instagram", m.WebhookHandler()))
	private := m.AdminHandler() // e.g. http.ListenAndServe("127.0.0.1:8101", private)

	get := func(h http.Handler, path string) int {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer admin-token")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	fmt.Println("public handshake:", get(public, "/instagram/webhook/?hub.mode=subscribe&hub.verify_token=verify-token&hub.challenge=1"))
	fmt.Println("public admin route:", get(public, "/instagram/worker-apps/"))
	fmt.Println("private admin route:", get(private, "/worker-apps/"))
	// Output:
	// public handshake: 200
	// public admin route: 404
	// private admin route: 200
}
