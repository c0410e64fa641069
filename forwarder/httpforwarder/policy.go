package httpforwarder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrAddressRefused is wrapped by the error of an attempt, or of a URL
// check, whose address the dial policy refuses. Such an attempt is final:
// asking again would be refused again.
var ErrAddressRefused = errors.New("httpforwarder: address refused by the dial policy")

// DialPolicy says which addresses worker apps may be reached at, so that a
// registered URL cannot make the Mapper call what it should not (a cloud
// metadata service, a database's admin port).
//
// Link-local addresses (169.254.0.0/16 and fe80::/10, which hold the cloud
// metadata services), unspecified, multicast and broadcast addresses are
// always refused, whatever the lists say. Loopback and private ranges are
// allowed by default: worker apps are internal services. Deny refuses more
// prefixes; Allow, when not empty, admits only its prefixes.
//
// The Forwarder checks the address it actually dials, after name
// resolution, so that a name that later resolves elsewhere (DNS rebinding)
// is caught. Through a proxy (HTTP_PROXY) the proxy is what is dialed:
// then only a URL's literal IP is checked, and the proxy must hold the line
// for names.
type DialPolicy struct {
	Allow []netip.Prefix
	Deny  []netip.Prefix
}

// broadcast is IPv4's limited broadcast address.
var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// Check returns an error wrapping ErrAddressRefused when addr may not be
// dialed.
func (p DialPolicy) Check(addr netip.Addr) error {
	addr = addr.Unmap()
	var why string
	switch {
	case !addr.IsValid():
		why = "not an address"
	case addr.IsLinkLocalUnicast(), addr.IsLinkLocalMulticast():
		why = "link-local (where cloud metadata services live)"
	case addr.IsUnspecified(), addr.Is4() && addr.As4()[0] == 0:
		why = "unspecified"
	case addr.IsMulticast(), addr.IsInterfaceLocalMulticast():
		why = "multicast"
	case addr == broadcast:
		why = "broadcast"
	case containsAddr(p.Deny, addr):
		why = "in a denied range"
	case len(p.Allow) > 0 && !containsAddr(p.Allow, addr):
		why = "outside the allowed ranges"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s is %s", ErrAddressRefused, addr, why)
}

func containsAddr(prefixes []netip.Prefix, addr netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// CheckURL checks a worker app's URL when it is registered: an http or
// https URL whose host, a literal IP or every address its name resolves
// to now, the policy admits. A name that does not resolve yet is not an
// error here (every dial is checked again).
func (p DialPolicy) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return fmt.Errorf("httpforwarder: %q is not an http or https URL", redact(raw))
	}
	host := u.Hostname()
	if addr, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return p.Check(addr)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if err := p.Check(a); err != nil {
			return fmt.Errorf("%s resolves to a refused address: %w", host, err)
		}
	}
	return nil
}

// control is a net.Dialer Control hook that refuses what the policy does,
// on the resolved address about to be dialed.
func (p DialPolicy) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrAddressRefused, address)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %q is not an address", ErrAddressRefused, host)
	}
	return p.Check(addr)
}

// WithDialPolicy sets which addresses worker apps may be reached at. The
// zero policy (the default) refuses only the addresses DialPolicy always
// refuses. It applies to the Forwarder's own transport, not to one given
// with WithTransport.
func WithDialPolicy(p DialPolicy) Option { return func(f *Forwarder) { f.policy = p } }

// ParsePrefixes reads a comma-separated list of CIDR prefixes or single
// addresses ("10.0.0.0/8, 192.168.1.5"), as an environment variable holds
// them.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR prefix nor an address", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
