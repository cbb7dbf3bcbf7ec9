# The geo router image: a static binary on an empty base, run as a non-root user
# with a read-only root filesystem. It keeps no state.
#
#   docker build -f Dockerfile.geo --build-arg VERSION=$(git describe --always) -t sentiment-geo .

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.Version=${VERSION}" -o /out/geo ./cmd/geo

FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="sentiment-geo" \
      org.opencontainers.image.version="${VERSION}"
# CA certificates for TLS to S3 and Consul.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/geo /geo
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/geo", "-listen", ":8080"]
