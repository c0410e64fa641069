#!/usr/bin/env bash
# CI entry point. On a fresh machine it installs and starts what the tests
# need — a Docker engine from Debian's docker.io, Debian's chromium for the browser tests, and local PostgreSQL and
# Redis images built from Debian packages (no registry is reachable) — then
# checks formatting and vet, and runs the README's test command with -race,
# with containers required so that no database test can silently skip.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
log() { printf '\n--- %s\n' "$*"; }

log "Docker engine"
if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1 || ! command -v docker-compose >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap docker-compose chromium
fi
if ! docker info >/dev/null 2>&1; then
	# A dockerd killed without its shutdown leaves pid files behind that
	# stop the next one from starting.
	for pidfile in /var/run/docker.pid /run/docker/containerd/containerd.pid; do
		if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; then
			rm -f "$pidfile"
		fi
	done
	nohup dockerd >/tmp/mapper-ci-dockerd.log 2>&1 &
	for _ in $(seq 1 60); do
		docker info >/dev/null 2>&1 && break
		sleep 1
	done
	docker info >/dev/null 2>&1 || { tail -30 /tmp/mapper-ci-dockerd.log; echo "dockerd did not start"; exit 1; }
fi
docker version --format 'client {{.Client.Version}}, server {{.Server.Version}}'

log "test images"
export MAPPER_TEST_POSTGRES_IMAGE=mapper-test/postgres:15
export MAPPER_TEST_REDIS_IMAGE=mapper-test/redis:7
if ! docker image inspect "$MAPPER_TEST_POSTGRES_IMAGE" "$MAPPER_TEST_REDIS_IMAGE" >/dev/null 2>&1; then
	PG_TAG="$MAPPER_TEST_POSTGRES_IMAGE" REDIS_TAG="$MAPPER_TEST_REDIS_IMAGE" testing/containertest/images/build.sh
else
	echo "present: $MAPPER_TEST_POSTGRES_IMAGE $MAPPER_TEST_REDIS_IMAGE"
fi
# testcontainers: no reaper image can be pulled, and this machine looks like
# a container to it, so it must be told to dial localhost.
export TESTCONTAINERS_RYUK_DISABLED=true
export TESTCONTAINERS_HOST_OVERRIDE=localhost
export MAPPER_TEST_REQUIRE_CONTAINERS=1
# The browser tests (Debian's chromium, driven by chromedp) must run too.
export MAPPER_TEST_REQUIRE_BROWSER=1

docker tag "$MAPPER_TEST_POSTGRES_IMAGE" postgres:15; docker tag "$MAPPER_TEST_REDIS_IMAGE" redis:7
