package main

import (
	"fmt"
	"io"

	"github.com/joho/godotenv"
)

// parseDotenv reads a .env file as the original service's tooling does
// (python-dotenv, docker compose): KEY=VALUE lines, # comments, an
// optional "export " prefix, single-quoted values taken literally,
// double-quoted ones with escapes and ${VAR} expansion.
func parseDotenv(r io.Reader) (map[string]string, error) {
	vals, err := godotenv.Parse(r)
	if err != nil {
		return nil, fmt.Errorf(".env: %w", err)
	}
	if v, ok := vals[""]; ok {
		// A lone word reads as a value without a key: a typo to report.
		return nil, fmt.Errorf(".env: %q is not KEY=VALUE", v)
	}
	return vals, nil
}
