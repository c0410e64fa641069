# The reference server as a container image: one static binary on an empty
# base, run as a non-root user, with CA certificates (for the Graph API) and
# the time zone database compiled in. No shell: the HEALTHCHECK is the
# binary's own "healthcheck" command.
#
#   docker build -t chatico/mapper .
#
# The base images are build arguments so that a machine that reaches no
# registry builds this same file from local images (.ci/run does). Modules
# come from the Go proxy, or from a vendor/ directory in the build context.
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=scratch

FROM ${GO_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
COPY . .
ARG VERSION=dev
RUN go build -trimpath -tags timetzdata -ldflags="-s -w -X main.buildVersion=${VERSION}" \
        -o /out/referenceserver ./referenceserver \
    && cp /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt \
    && mkdir -p /out/data

FROM ${RUNTIME_IMAGE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="mapper" \
      org.opencontainers.image.description="Receives Meta's Instagram webhooks and delivers each to the worker app that serves its account" \
      org.opencontainers.image.source="https://github.com/chatico/mapper" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/referenceserver /usr/local/bin/referenceserver
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
# SQLite lives in /data unless DATABASE_URL names a PostgreSQL.
ENV PORT=8100 SQLITE_PATH=/data/mapper.db
VOLUME /data
EXPOSE 8100
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/referenceserver", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/referenceserver"]
