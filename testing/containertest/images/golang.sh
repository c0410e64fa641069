#!/bin/bash
# Build a local stand-in for docker.io/library/golang:1.26-bookworm, for a
# machine that reaches no registry: the Debian base image that build.sh
# made, this machine's Go toolchain and its CA certificates.
#
#   GO_TAG=mapper-ci/golang:1.26 ./golang.sh
set -Eeuo pipefail
BASE_TAG="${BASE_TAG:-mapper-test/bookworm-pg-redis:base}"
if ! docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
	# The PostgreSQL look-alike is the same Debian with an entrypoint.
	BASE_TAG="${MAPPER_TEST_POSTGRES_IMAGE:-mapper-test/postgres:15}"
fi
GO_TAG="${GO_TAG:-mapper-ci/golang:1.26}"
GOROOT="$(go env GOROOT)"
CTX="$(mktemp -d)"
trap 'rm -rf "$CTX"' EXIT
cp -a "$GOROOT" "$CTX/go"
cp /etc/ssl/certs/ca-certificates.crt "$CTX/"
cat > "$CTX/Dockerfile" <<DOCKERFILE
FROM $BASE_TAG
COPY go /usr/local/go
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENTRYPOINT []
CMD ["go", "version"]
ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin GOTOOLCHAIN=local GOFLAGS=-mod=vendor
DOCKERFILE
DOCKER_BUILDKIT=0 docker build -q -t "$GO_TAG" "$CTX" >/dev/null
echo "built $GO_TAG ($(docker run --rm "$GO_TAG" go version))"
