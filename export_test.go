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
