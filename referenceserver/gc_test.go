package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTuneGC(t *testing.T) {
	v2 := cgroupDir(t, "memory.max", "268435456\n")
	v1 := cgroupDir(t, "memory/memory.limit_in_bytes", "104857600\n")
	unlimited := cgroupDir(t, "memory.max", "max\n")
	v1Unlimited := cgroupDir(t, "memory/memory.limit_in_bytes", "9223372036854771712\n")
	tests := []struct {
		name        string
		process     map[string]string // the process environment
		file        map[string]string // and the .env file's, under it
		root        string
		wantPercent int
		wantLimit   int64
		wantErr     string
	}{
		{name: "defaults, no container", root: t.TempDir(), wantPercent: 200},
		{name: "cgroup v2 limit", root: v2, wantPercent: 200, wantLimit: 268435456 / 10 * 9},
		{name: "cgroup v1 limit", root: v1, wantPercent: 200, wantLimit: 104857600 / 10 * 9},
		{name: "v2 without a limit", root: unlimited, wantPercent: 200},
		{name: "v1 without a limit", root: v1Unlimited, wantPercent: 200},
		{name: "GOGC from the environment", process: map[string]string{"GOGC": "150"}, root: v2, wantPercent: 150, wantLimit: 268435456 / 10 * 9},
		{name: "GOGC from the file", file: map[string]string{"GOGC": "off"}, root: v2, wantPercent: -1, wantLimit: 268435456 / 10 * 9},
		{name: "GOMEMLIMIT set: the runtime's wins", process: map[string]string{"GOMEMLIMIT": "100MiB"}, root: v2, wantPercent: 200},
		{name: "GOMEMLIMIT only in the file", file: map[string]string{"GOMEMLIMIT": "100MiB"}, root: v2, wantErr: "GOMEMLIMIT must be set in the process environment"},
		{name: "bad GOGC", process: map[string]string{"GOGC": "lots"}, root: v2, wantErr: `GOGC "lots" must be a percentage`},
		{name: "negative GOGC", file: map[string]string{"GOGC": "-5"}, root: v2, wantErr: `GOGC "-5"`},
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
			got, err := tuneGC(getenv, withFile, tt.root)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.percent != tt.wantPercent || got.limit != tt.wantLimit {
				t.Errorf("got GOGC %d and limit %d, want %d and %d", got.percent, got.limit, tt.wantPercent, tt.wantLimit)
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
