package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigGoRuntime: GOGC is a percentage or off (200 unset), GOMAXPROCS
// a count of threads (0 unset: the runtime's own); anything else is
// refused by name.
func TestConfigGoRuntime(t *testing.T) {
	gogc := func(c *config) int { return c.GCPercent }
	procs := func(c *config) int { return c.MaxProcs }
	for _, tt := range []struct {
		name, value string
		field       func(*config) int
		want        int
		wantErr     string
	}{
		{"GOGC", "", gogc, 200, ""},
		{"GOGC", "150", gogc, 150, ""},
		{"GOGC", "0", gogc, 0, ""},
		{"GOGC", "off", gogc, -1, ""},
		{"GOGC", " OFF ", gogc, -1, ""},
		{"GOGC", "lots", gogc, 0, `GOGC "lots" must be a percentage (0 or more) or off`},
		{"GOGC", "-5", gogc, 0, `GOGC "-5"`},
		{"GOMAXPROCS", "", procs, 0, ""},
		{"GOMAXPROCS", "1", procs, 1, ""},
		{"GOMAXPROCS", " 4 ", procs, 4, ""},
		{"GOMAXPROCS", "0", procs, 0, `GOMAXPROCS "0" must be a whole number of threads, 1 or more`},
		{"GOMAXPROCS", "-2", procs, 0, `GOMAXPROCS "-2"`},
		{"GOMAXPROCS", "two", procs, 0, `GOMAXPROCS "two"`},
	} {
		cfg, err := loadConfig(env(map[string]string{"INSTAGRAM_APP_SECRET": "s", "WEBHOOK_VERIFY_TOKEN": "v", tt.name: tt.value}))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s=%q: error %v, want one with %q", tt.name, tt.value, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s=%q: %v", tt.name, tt.value, err)
		} else if got := tt.field(cfg); got != tt.want {
			t.Errorf("%s=%q: %d, want %d", tt.name, tt.value, got, tt.want)
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
