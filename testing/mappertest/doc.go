// Package mappertest holds fakes and builders for testing code that uses
// the Mapper, or that a Mapper delivers to: a fake Graph API, a fake worker
// app, and a builder of signed webhooks escaped the way Meta escapes them.
//
// Every fake is a real HTTP server on loopback, so the code under test
// makes real requests. The package uses only the standard library:
// importing it compiles no database or container code. (The fakes live in
// an internal package that the reference server's demo runs too.)
package mappertest
