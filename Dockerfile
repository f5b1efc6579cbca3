# syntax=docker/dockerfile:1
# The node image: the static binaries of scripts/release-binaries.sh on an empty base — no shell,
# no libc, no package manager; nothing runs in it but the node. Built by
# .github/workflows/release.yml with docker buildx for linux/amd64 and linux/arm64 from a context
# holding dist/amd64/ and dist/arm64/ (rewarder-macronode and rewarder-micronode of that
# architecture), pushed to ghcr.io/<owner>/<repo>. No Docker engine runs on the project's
# machines: `hadolint` lints this file in scripts/check-repo.sh, and the binaries themselves are
# run by scripts/check-static-binaries.sh.
#
# Runs the macronode (deploy/k8s); `--entrypoint /usr/local/bin/rewarder-micronode` runs the
# micronode. Bound to 0.0.0.0:8080, so the node refuses to start without AUTH_KEYS (or an
# explicit ALLOW_INSECURE_BIND=true): docs/spec/API.md §5.
FROM scratch
ARG TARGETARCH
LABEL org.opencontainers.image.title="svc-rewarder" \
      org.opencontainers.image.description="Deterministic reward computation: rewarder-macronode and rewarder-micronode, static" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --chmod=0555 dist/${TARGETARCH}/rewarder-macronode /usr/local/bin/rewarder-macronode
COPY --chmod=0555 dist/${TARGETARCH}/rewarder-micronode /usr/local/bin/rewarder-micronode
# 65532: the UID and GID deploy/k8s/statefulset.yaml runs as (runAsNonRoot).
USER 65532:65532
ENV BIND_ADDR=0.0.0.0:8080
EXPOSE 8080
# scratch has no curl: the binary probes its own /readyz (plain HTTP on BIND_ADDR's port).
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/usr/local/bin/rewarder-macronode", "healthcheck", "--timeout-ms", "3000"]
ENTRYPOINT ["/usr/local/bin/rewarder-macronode"]
CMD ["serve"]
