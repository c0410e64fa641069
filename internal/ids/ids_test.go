package ids

import (
	"testing"
	"time"
)

func TestNewIDIncreases(t *testing.T) {
	t.Parallel()
	now := time.Now()
	prev := New("evt_", now)
	for i := range 10000 {
		at := now
		if i%1000 == 0 {
			at = now.Add(time.Duration(i) * time.Millisecond)
		}
		id := New("evt_", at)
		if id <= prev || len(id) != 30 {
			t.Fatalf("%s after %s", id, prev)
		}
		prev = id
	}
}

func TestIDTime(t *testing.T) {
	t.Parallel()
	at := time.Now().Add(time.Hour).Truncate(time.Millisecond) // later than every ID made so far
	got, ok := Time(New("evt_", at))
	if !ok || !got.Equal(at) {
		t.Errorf("idTime: %v %v, want %v", got, ok, at)
	}
	if _, ok := Time("short"); ok {
		t.Error("a short ID read as a time")
	}
}
