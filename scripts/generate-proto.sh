#!/usr/bin/env bash
# Regenerates Sources/FreshlineEngine/Proto/onnx.pb.swift from proto/onnx.proto.
# Needs Debian's protoc (apt-get install protobuf-compiler) and a release build of protoc-gen-swift from the
# same swift-protobuf version as Package.swift (1.39.0); the build takes about a minute and is cached in
# .build-protoc-gen-swift/. The generated file is committed so that normal builds need neither tool.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "generate-proto: protoc is missing (apt-get install -y protobuf-compiler)" >&2; exit 1; }
plugin_dir=.build-protoc-gen-swift
if [ ! -x "$plugin_dir/src/.build/release/protoc-gen-swift" ]; then
  rm -rf "$plugin_dir/src"
  mkdir -p "$plugin_dir"
  git clone --quiet --depth 1 --branch 1.39.0 https://github.com/apple/swift-protobuf "$plugin_dir/src"
  (cd "$plugin_dir/src" && swift build -c release --product protoc-gen-swift)
fi
protoc --plugin="protoc-gen-swift=$plugin_dir/src/.build/release/protoc-gen-swift" \
  --swift_opt=Visibility=Internal --swift_out=Sources/FreshlineEngine/Proto -I proto proto/onnx.proto
# Generated code keeps protoc-gen-swift's layout: the formatter leaves it alone.
sed -i '1i // swift-format-ignore-file' Sources/FreshlineEngine/Proto/onnx.pb.swift
echo "generate-proto: wrote Sources/FreshlineEngine/Proto/onnx.pb.swift"
