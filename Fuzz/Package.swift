// swift-tools-version: 6.2
// libFuzzer targets: the model loader and executor (ModelLoaderFuzzer), and the HTTP API's request decoding
// (RequestFuzzer). Build and run (from this folder):
//   swift build -c release --sanitize=fuzzer --product ModelLoaderFuzzer
//   SWIFT_BACKTRACE=enable=no .build/release/ModelLoaderFuzzer corpus/ ../Tests/Fixtures/zoo -max_total_time=600
// (`scripts/fuzz.sh` and `scripts/fuzz-http.sh` do both.) Kept out of the main package: a fuzzer has no main() of
// its own.
import PackageDescription

let package = Package(
    name: "FreshlineFuzz",
    dependencies: [
        .package(name: "freshline", path: ".."),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .executableTarget(
            name: "ModelLoaderFuzzer",
            dependencies: [.product(name: "FreshlineEngine", package: "freshline")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "RequestFuzzer",
            dependencies: [
                .product(name: "FreshlineCore", package: "freshline"),
                .product(name: "FreshlineRuntime", package: "freshline"),
                .product(name: "FreshlineStore", package: "freshline"),
                .product(name: "FreshlineHTTP", package: "freshline"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
    ]
)
