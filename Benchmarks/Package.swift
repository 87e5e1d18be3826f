// swift-tools-version: 6.2
// Benchmarks of the Freshline engine (ordo-one/benchmark). Run from this folder:
//   swift package --allow-writing-to-package-directory benchmark
// Not built by `make test`; numbers are quoted in the README and issue notes with the command that made them.
import PackageDescription

let package = Package(
    name: "FreshlineBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "freshline", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        .executableTarget(
            name: "EngineBenchmarks",
            dependencies: [
                .product(name: "FreshlineEngine", package: "freshline"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/EngineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Guards for the hand-written fast paths (JSON reader and writer, decimal reader, columnar CSV path): their
        // malloc counts and instruction counts are checked against Benchmarks/Thresholds by `make bench-check`.
        .executableTarget(
            name: "FastPathBenchmarks",
            dependencies: [
                .product(name: "FreshlineJSON", package: "freshline"),
                .product(name: "FreshlineCore", package: "freshline"),
                .product(name: "FreshlineEngine", package: "freshline"),
                .product(name: "FreshlineRuntime", package: "freshline"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/FastPathBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The overhead floor of bench/serving-load: POST / reads the body and answers {"ok":true}.
        .executableTarget(
            name: "BareEndpoint",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")],
            path: "Sources/BareEndpoint"
        ),
    ]
)
