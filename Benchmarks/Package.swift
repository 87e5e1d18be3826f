// swift-tools-version: 6.2
// Benchmarks of the Freshline engine (ordo-one/benchmark). Run from this folder:
//   swift package --allow-writing-to-package-directory benchmark
// Not built by `make test`; numbers are quoted in the README and issue notes with the command that made them.
import PackageDescription

let package = Package(
    name: "FreshlineBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
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
        )
    ]
)
