package mapper

import "time"

// RouteTable lists the Mapper's routes for tests: each pattern, and
// whether it is public.
func (m *Mapper) RouteTable() map[string]bool {
	out := map[string]bool{}
	for _, r := range m.routeTable() {
		out[r.pattern] = r.public
	}
	return out
}

// WithBodyTimeout shortens the body read deadline for tests.
func WithBodyTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.bodyTimeout = d })
}

// HandoffSize is how many handed-over events may wait for the loop.
const HandoffSize = handoffSize

// WithHandoffWait sets how long a webhook waits for a place in a full
// handoff, for tests.
func WithHandoffWait(d time.Duration) Option {
	return optionFunc(func(c *config) { c.handoffWait = d })
}
