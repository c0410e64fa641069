// Command composecheck runs compose.yaml as an operator would and checks
// it: Meta's handshake, a signed webhook delivered to a worker app, a
// restart of the mapper container that loses nothing, and, with three
// replicas on the one PostgreSQL, webhooks taken by one replica and
// delivered while another is stopped. CI runs it after building the
// images; it needs docker-compose (or "docker compose") and the images
// named by MAPPER_IMAGE and WORKER_IMAGE, and leaves nothing behind.
//
//	go run ./deploy/composecheck
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/chatico/mapper/testing/mappertest"
)

const (
	metaSecret   = "compose-check-meta-secret"
	verifyToken  = "compose-check-verify-token"
	adminToken   = "compose-check-admin-token"
	workerSecret = "compose-check-worker-secret"
	account      = "17841400000000001"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "composecheck: FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("composecheck: all checks passed")
}

// project drives one compose project.
type project struct {
	cmd   []string // docker-compose, or docker compose
	files []string
	env   []string
}

func (p *project) compose(args ...string) error {
	full := append(append([]string{}, p.cmd[1:]...), "--project-name", "mappercheck")
	for _, f := range p.files {
		full = append(full, "-f", f)
	}
	c := exec.Command(p.cmd[0], append(full, args...)...)
	c.Env = append(os.Environ(), p.env...)
	c.Stdout, c.Stderr = os.Stderr, os.Stderr
	fmt.Fprintln(os.Stderr, "+", strings.Join(append(p.cmd, args...), " "))
	return c.Run()
}

func run() error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "composecheck-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	envFile := filepath.Join(tmp, "mapper.env")
	settings := strings.Join([]string{
		"INSTAGRAM_APP_SECRET=" + metaSecret,
		"WEBHOOK_VERIFY_TOKEN=" + verifyToken,
		"ADMIN_TOKEN=" + adminToken,
		"DATABASE_URL=postgres://mapper:check-password@postgres:5432/mapper?sslmode=disable",
		"REDIS__URL=redis://redis:6379/0",
		"RETRY_MIN_BACKOFF=100ms",
		"RETRY_MAX_BACKOFF=1s",
		"",
	}, "\n")
	if err := os.WriteFile(envFile, []byte(settings), 0o600); err != nil {
		return err
	}
	checkFile := filepath.Join(tmp, "check.yaml")
	if err := os.WriteFile(checkFile, []byte(workerService), 0o600); err != nil {
		return err
	}
	p := &project{
		cmd:   composeCommand(),
		files: []string{filepath.Join(root, "compose.yaml"), checkFile},
		env: []string{
			"MAPPER_IMAGE=" + cmp.Or(os.Getenv("MAPPER_IMAGE"), "chatico/mapper:ci"),
			"WORKER_IMAGE=" + cmp.Or(os.Getenv("WORKER_IMAGE"), "chatico/mapper-workerapp:ci"),
			"MAPPER_ENV_FILE=" + envFile,
			"POSTGRES_PASSWORD=check-password",
			"MAPPER_PORT=18100", "MAPPER2_PORT=18101", "MAPPER3_PORT=18102",
		},
	}
	defer func() { _ = p.compose("--profile", "replicas", "down", "--volumes", "--remove-orphans") }()
	if err := single(p); err != nil {
		return err
	}
	return replicas(p)
}

// workerService adds the example worker app to the project.
const workerService = `services:
  worker:
    image: ${WORKER_IMAGE}
    environment:
      MAPPER_SECRET: ` + workerSecret + `
      ADDR: ":9000"
`

func composeCommand() []string {
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}
	}
	return []string{"docker", "compose"}
}

// single: one mapper; handshake, delivery, a restart that loses nothing.
func single(p *project) error {
	if err := p.compose("up", "-d", "--no-build"); err != nil {
		return err
	}
	m1 := "http://127.0.0.1:18100"
	if err := waitHealthy(m1); err != nil {
		return err
	}
	if err := handshake(m1); err != nil {
		return err
	}
	if err := registerWorker(m1); err != nil {
		return err
	}
	first, err := postWebhook(m1, "17900000000000001")
	if err != nil {
		return err
	}
	if err := waitDelivered(m1, first); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "ok: handshake, and a signed webhook delivered to the worker app")

	// A webhook acknowledged just before a restart is delivered after it,
	// and the first is still in the log.
	second, err := postWebhook(m1, "17900000000000002")
	if err != nil {
		return err
	}
	if err := p.compose("restart", "mapper"); err != nil {
		return err
	}
	if err := waitHealthy(m1); err != nil {
		return err
	}
	for _, id := range []string{first, second} {
		if err := waitDelivered(m1, id); err != nil {
			return fmt.Errorf("after the restart: %w", err)
		}
	}
	fmt.Fprintln(os.Stderr, "ok: a restart of the mapper container lost nothing")
	return nil
}

// replicas: three mappers on one PostgreSQL; with one stopped, webhooks
// taken by the others are delivered, and every replica sees them.
func replicas(p *project) error {
	if err := p.compose("--profile", "replicas", "up", "-d", "--no-build"); err != nil {
		return err
	}
	urls := []string{"http://127.0.0.1:18100", "http://127.0.0.1:18101", "http://127.0.0.1:18102"}
	for _, u := range urls {
		if err := waitHealthy(u); err != nil {
			return err
		}
	}
	if err := p.compose("stop", "mapper2"); err != nil {
		return err
	}
	var ids []string
	for i, u := range []string{urls[0], urls[2]} {
		id, err := postWebhook(u, fmt.Sprintf("1790000000000010%d", i))
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		// Read through the other live replica: the database is shared.
		if err := waitDelivered(urls[0], id); err != nil {
			return fmt.Errorf("with mapper2 stopped: %w", err)
		}
		if err := waitDelivered(urls[2], id); err != nil {
			return fmt.Errorf("with mapper2 stopped: %w", err)
		}
	}
	if err := p.compose("start", "mapper2"); err != nil {
		return err
	}
	if err := waitHealthy(urls[1]); err != nil {
		return err
	}
	if err := waitDelivered(urls[1], ids[0]); err != nil {
		return fmt.Errorf("seen from mapper2 after its restart: %w", err)
	}
	fmt.Fprintln(os.Stderr, "ok: three replicas on one PostgreSQL; with one stopped, the others took and delivered")
	return nil
}

func waitHealthy(base string) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(base + "/monitoring/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s never became healthy (%v)", base, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func handshake(base string) error {
	resp, err := http.Get(base + "/webhook/?hub.mode=subscribe&hub.verify_token=" + verifyToken + "&hub.challenge=1158201444")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "1158201444" {
		return fmt.Errorf("handshake: %d %q", resp.StatusCode, body)
	}
	return nil
}

func admin(method, url string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// registerWorker points the account at the worker app, by its compose
// service name.
func registerWorker(base string) error {
	code, body, err := admin(http.MethodPost, base+"/worker-apps/", map[string]any{
		"name": "worker", "url": "http://worker:9000/instagram", "account_ids": []string{account}, "secret": workerSecret,
	})
	if err != nil {
		return err
	}
	if code != http.StatusCreated {
		return fmt.Errorf("registering the worker app: %d %s", code, body)
	}
	return nil
}

func postWebhook(base, commentID string) (string, error) {
	req := mappertest.NewWebhook().Comment(account, "18000000000000001", commentID, "from the compose check").Request(base+"/webhook/", metaSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		EventID string `json:"event_id"`
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil || out.EventID == "" {
		return "", fmt.Errorf("webhook to %s: %d %s", base, resp.StatusCode, body)
	}
	return out.EventID, nil
}

// waitDelivered waits for the event to be delivered, as the admin API of
// base reports it.
func waitDelivered(base, eventID string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var last []byte
	for ctx.Err() == nil {
		code, body, err := admin(http.MethodGet, base+"/monitoring/webhook-logs/"+eventID, nil)
		if err == nil && code == http.StatusOK {
			var ev struct {
				Status     string `json:"status"`
				Deliveries []struct {
					Status string `json:"status"`
				} `json:"deliveries"`
			}
			if json.Unmarshal(body, &ev) == nil && ev.Status == "delivered" && len(ev.Deliveries) == 1 && ev.Deliveries[0].Status == "delivered" {
				return nil
			}
		}
		last = body
		time.Sleep(500 * time.Millisecond)
	}
	return errors.New("event " + eventID + " not delivered: " + string(last))
}
