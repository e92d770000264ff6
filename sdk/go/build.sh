#!/usr/bin/env bash
# Builds, tests and regenerates the Go SDK offline, from Debian's Go packages.
#
#   sdk/go/build.sh generate        regenerate modelboxv1/*.pb.go from modelbox_autolog/proto
#   sdk/go/build.sh check           fail if the checked-in generated code is out of date
#   sdk/go/build.sh build           go vet + build the tools into $MODELBOX_SDK_BUILD/bin
#   sdk/go/build.sh test            gofmt check + go test (unit tests; no server needed)
#   sdk/go/build.sh go ARGS...      any go command in the same offline setup (go test -bench ...)
#
# Offline build: Debian ships gRPC-Go and protobuf-go as source trees under /usr/share/gocode/src
# (golang-google-grpc-dev, golang-google-protobuf-dev). sdk/go/go.mod is the ordinary module file
# a user with a module proxy builds with; here `go` runs with -modfile pointing at a copy of it
# that adds one `replace` per dependency: to the Debian source tree when it has a go.mod, else to
# an empty stub module (dependencies of packages we never import, e.g. gRPC's xDS support, that
# Debian does not ship). GOPROXY=off: nothing is fetched.
set -euo pipefail
shopt -s nullglob

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${MODELBOX_SDK_BUILD:-$ROOT/build/sdk}/go"
GOCODE="${GOCODE:-/usr/share/gocode/src}"
PROTO_ROOT="$ROOT/modelbox_autolog/proto"
MODULE="modelbox.dev/sdk/go"

export GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local GO111MODULE=on GOFLAGS=-mod=mod
export GOCACHE="$OUT/cache" GOPATH="$OUT/gopath"

# Every module in gRPC-Go 1.33's module graph (unpruned: its go.mod predates Go 1.17).
DEPENDENCIES=(
    google.golang.org/grpc google.golang.org/protobuf google.golang.org/genproto
    github.com/golang/protobuf github.com/golang/glog github.com/google/go-cmp github.com/google/uuid
    golang.org/x/net golang.org/x/sys golang.org/x/text golang.org/x/oauth2 golang.org/x/term
    golang.org/x/tools golang.org/x/mod golang.org/x/lint honnef.co/go/tools
    github.com/cncf/udpa/go github.com/envoyproxy/go-control-plane
    google.golang.org/appengine cloud.google.com/go/compute/metadata
)

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "sdk/go: $1 not found ($2)" >&2; exit 2; }
}

modfile() {
    need go "apt-get install golang-go golang-google-grpc-dev golang-google-protobuf-dev"
    [ -f "$GOCODE/google.golang.org/grpc/go.mod" ] || {
        echo "sdk/go: gRPC-Go sources not found in $GOCODE (apt-get install golang-google-grpc-dev golang-google-protobuf-dev)" >&2
        exit 2
    }
    mkdir -p "$OUT/stubs"
    local mod="$OUT/debian.mod" tmp
    tmp="$(mktemp "$OUT/debian.mod.XXXXXX")"
    {
        cat "$HERE/go.mod"
        echo
        echo "replace ("
        for dep in "${DEPENDENCIES[@]}"; do
            if [ -f "$GOCODE/$dep/go.mod" ]; then
                echo "	$dep => $GOCODE/$dep"
            else
                local stub="$OUT/stubs/${dep//\//_}"
                mkdir -p "$stub"
                echo "module $dep" >"$stub/go.mod"
                echo "	$dep => $stub"
            fi
        done
        echo ")"
    } >"$tmp"
    # Keep the file (and its timestamp) when nothing changed: go then reuses its build cache.
    if [ -f "$mod" ] && [ -f "$mod.in" ] && cmp -s "$tmp" "$mod.in"; then
        rm -f "$tmp"
    else
        cp "$tmp" "$mod"
        mv "$tmp" "$mod.in"
    fi
    GOFLAGS="-mod=mod -modfile=$mod"
    export GOFLAGS
}

generate_into() {
    local dest="$1"
    need protoc "apt-get install protobuf-compiler"
    need protoc-gen-go "apt-get install protoc-gen-go"
    need protoc-gen-go-grpc "apt-get install protoc-gen-go-grpc"
    local maps=() proto rel
    for proto in "$PROTO_ROOT"/modelbox/v1/*.proto; do
        rel="modelbox/v1/$(basename "$proto")"
        maps+=("M$rel=$MODULE/modelboxv1")
    done
    local go_opts grpc_opts
    go_opts="module=$MODULE,$(IFS=,; echo "${maps[*]}")"
    grpc_opts="module=$MODULE,$(IFS=,; echo "${maps[*]}")"
    (cd "$PROTO_ROOT" && protoc -I . \
        --go_out="$dest" --go_opt="$go_opts" \
        --go-grpc_out="$dest" --go-grpc_opt="$grpc_opts" \
        modelbox/v1/*.proto)
}

case "${1:-}" in
generate | check)
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    generate_into "$tmp"
    stale=()
    for file in "$tmp"/modelboxv1/*.go; do
        name="modelboxv1/$(basename "$file")"
        cmp -s "$file" "$HERE/$name" || stale+=("$name")
    done
    for file in "$HERE"/modelboxv1/*.pb.go; do
        [ -e "$tmp/modelboxv1/$(basename "$file")" ] || stale+=("modelboxv1/$(basename "$file") (no longer generated)")
    done
    if [ "$1" = check ]; then
        if [ ${#stale[@]} -gt 0 ]; then
            echo "sdk/go: generated code out of date: ${stale[*]} (run: make sdk-proto; $(protoc --version), $(protoc-gen-go --version), $(protoc-gen-go-grpc --version))" >&2
            exit 1
        fi
        echo "sdk/go: generated code is up to date"
    else
        rm -f "$HERE"/modelboxv1/*.pb.go
        cp "$tmp"/modelboxv1/*.go "$HERE/modelboxv1/"
        echo "sdk/go: generated ${stale[*]:-nothing new}"
    fi
    ;;
build)
    modfile
    cd "$HERE"
    go vet ./...
    mkdir -p "$OUT/bin"
    go build -trimpath -o "$OUT/bin/" ./cmd/... ./examples/...
    echo "sdk/go: built $(ls "$OUT/bin" | tr '\n' ' ')in $OUT/bin"
    ;;
test)
    modfile
    cd "$HERE"
    unformatted="$(gofmt -l modelbox cmd examples)"
    if [ -n "$unformatted" ]; then
        echo "sdk/go: not gofmt-formatted: $unformatted" >&2
        exit 1
    fi
    go test -count=1 ./...
    ;;
go)
    modfile
    cd "$HERE"
    shift
    go "$@"
    ;;
*)
    echo "usage: $0 generate|check|build|test|go ARGS..." >&2
    exit 2
    ;;
esac
