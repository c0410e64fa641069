package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigGOGC(t *testing.T) {
	required := map[string]string{"INSTAGRAM_APP_SECRET": "s", "WEBHOOK_VERIFY_TOKEN": "v"}
	for _, tt := range []struct {
		gogc    string
		want    int
		wantErr string
	}{
		{"", 200, ""},
		{"150", 150, ""},
		{"0", 0, ""},
		{"off", -1, ""},
		{" OFF ", -1, ""},
		{"lots", 0, `GOGC "lots" must be a percentage (0 or more) or off`},
		{"-5", 0, `GOGC "-5"`},
	} {
		vars := map[string]string{"GOGC": tt.gogc}
		for k, v := range required {
			vars[k] = v
		}
		cfg, err := loadConfig(env(vars))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("GOGC=%q: error %v, want one with %q", tt.gogc, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("GOGC=%q: %v", tt.gogc, err)
		} else if cfg.GCPercent != tt.want {
			t.Errorf("GOGC=%q: GCPercent %d, want %d", tt.gogc, cfg.GCPercent, tt.want)
		}
	}
}

// TestConfigGOMAXPROCS: a count of threads, from the environment or the
// .env file; anything else is refused by name.
func TestConfigGOMAXPROCS(t *testing.T) {
	for _, tt := range []struct {
		value   string
		want    int
		wantErr string
	}{
		{"", 0, ""},
		{"1", 1, ""},
		{" 4 ", 4, ""},
		{"0", 0, `GOMAXPROCS "0" must be a whole number of threads, 1 or more`},
		{"-2", 0, `GOMAXPROCS "-2"`},
		{"two", 0, `GOMAXPROCS "two"`},
	} {
		cfg, err := loadConfig(env(map[string]string{"INSTAGRAM_APP_SECRET": "s", "WEBHOOK_VERIFY_TOKEN": "v", "GOMAXPROCS": tt.value}))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("GOMAXPROCS=%q: error %v, want one with %q", tt.value, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("GOMAXPROCS=%q: %v", tt.value, err)
		} else if cfg.MaxProcs != tt.want {
			t.Errorf("GOMAXPROCS=%q: MaxProcs %d, want %d", tt.value, cfg.MaxProcs, tt.want)
		}
	}
}

func TestSoftMemoryLimit(t *testing.T) {
	v2 := cgroupDir(t, "memory.max", "268435456\n")
	v1 := cgroupDir(t, "memory/memory.limit_in_bytes", "104857600\n")
	unlimited := cgroupDir(t, "memory.max", "max\n")
	v1Unlimited := cgroupDir(t, "memory/memory.limit_in_bytes", "9223372036854771712\n")
	tests := []struct {
		name    string
		process map[string]string // the process environment
		file    map[string]string // and the .env file's, under it
		root    string
		want    int64
		wantErr string
	}{
		{name: "no container", root: t.TempDir()},
		{name: "cgroup v2 limit", root: v2, want: 268435456 / 10 * 9},
		{name: "cgroup v1 limit", root: v1, want: 104857600 / 10 * 9},
		{name: "v2 without a limit", root: unlimited},
		{name: "v1 without a limit", root: v1Unlimited},
		{name: "GOMEMLIMIT set: the runtime's wins", process: map[string]string{"GOMEMLIMIT": "100MiB"}, root: v2},
		{name: "GOMEMLIMIT only in the file", file: map[string]string{"GOMEMLIMIT": "100MiB"}, root: v2, wantErr: "GOMEMLIMIT must be set in the process environment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := env(tt.process)
			withFile := func(k string) string {
				if v := getenv(k); v != "" {
					return v
				}
				return tt.file[k]
			}
			got, err := softMemoryLimit(getenv, withFile, tt.root)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("limit %d, want %d", got, tt.want)
			}
		})
	}
}

// cgroupDir makes a cgroup root holding one file.
func cgroupDir(t *testing.T, file, content string) string {
	t.Helper()
	root := t.TempDir()
	path := filepath.Join(root, filepath.FromSlash(file))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}
