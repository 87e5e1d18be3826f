// swift-tools-version: 6.2
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .treatAllWarnings(as: .error),
]

// Split in two typed lists: one array literal of this size is too much for the type checker.
let libraryTargets: [Target] = [
    // The JSON value, its byte reader and writer, and the decimal reader: the request path's JSON and the CSV
    // path's numbers, shared by the engine, the runtime and HTTP. Pure: no dependencies.
    // Release builds serialize its function bodies for its clients (cross-module optimization): the engine's
    // row writer calls `appendNumber` per element, which was a call within one module before the split.
    .target(
        name: "FreshlineJSON",
        swiftSettings: strictSettings + [
            .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))
        ]
    ),
    // Domain types, manifest model and validation, freshness and fallback logic, batcher state machine.
    // Pure: no I/O, no NIO.
    // Release builds serialize Core's function bodies for its clients (cross-module optimization), so the
    // batcher state machine — generic over the runtime's request type — is specialized where it is used
    // instead of running through generic witness tables on every request.
    .target(
        name: "FreshlineCore",
        dependencies: ["FreshlineJSON"],
        swiftSettings: strictSettings + [
            .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))
        ]
    ),

    // OpenBLAS on Linux (Debian's libopenblas-dev); on macOS the engine uses Accelerate instead.
    .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", providers: [.apt(["libopenblas-dev"])]),
    .target(
        name: "FreshlineEngine",
        dependencies: [
            "FreshlineJSON",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "Crypto", package: "swift-crypto"),
            .target(name: "CBLAS", condition: .when(platforms: [.linux])),
        ],
        swiftSettings: strictSettings
    ),
    .target(
        name: "FreshlineStore",
        dependencies: [
            "FreshlineCore", .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "GRDBSQLite", package: "GRDB.swift"),
        ],
        swiftSettings: strictSettings
    ),
    // The same store protocols on PostgreSQL, for several server and worker processes sharing one state.
    .target(
        name: "FreshlinePostgres",
        dependencies: [
            "FreshlineCore",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ],
        swiftSettings: strictSettings
    ),
    .target(
        name: "FreshlineUpstream",
        dependencies: [
            "FreshlineJSON",
            "FreshlineCore", "FreshlineEngine",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ],
        swiftSettings: strictSettings
    ),
    .target(
        name: "FreshlineSnapshot",
        dependencies: [
            "FreshlineJSON", "FreshlineCore", "FreshlineEngine",
        ],
        swiftSettings: strictSettings
    ),
    .target(
        name: "FreshlineRuntime",
        dependencies: [
            "FreshlineJSON",
            "FreshlineUpstream", "FreshlineSnapshot",
            "FreshlineCore", "FreshlineEngine", "FreshlineStore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ],
        swiftSettings: strictSettings
    ),
    // The store a manifest names, opened: SQLite or PostgreSQL. The executable's choice, out of the runtime.
    .target(
        name: "FreshlineStores",
        dependencies: [
            "FreshlineCore", "FreshlineRuntime", "FreshlineStore", "FreshlinePostgres",
            .product(name: "Logging", package: "swift-log"),
        ],
        swiftSettings: strictSettings
    ),
    // The worked example (`freshline demo`): its synthetic world and the traffic driver. Not part of serving.
    .target(
        name: "FreshlineDemo",
        dependencies: [
            "FreshlineEngine",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ],
        swiftSettings: strictSettings
    ),
    .target(
        name: "FreshlineHTTP",
        dependencies: [
            "FreshlineJSON",
            "FreshlineRuntime",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "NIOCore", package: "swift-nio"),
        ],
        swiftSettings: strictSettings
    ),
    .executableTarget(
        name: "freshline",
        dependencies: [
            "FreshlineJSON",
            "FreshlineCore", "FreshlineEngine", "FreshlineRuntime", "FreshlineHTTP", "FreshlineSnapshot",
            "FreshlineDemo", "FreshlineStores",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ],
        swiftSettings: strictSettings
    ),
    .target(
        name: "FreshlineTesting",
        dependencies: [
            "FreshlineJSON",
            "FreshlineCore", "FreshlineEngine",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
        ],
        swiftSettings: strictSettings
    ),
    // Helpers the test targets share (test targets cannot depend on one another): manifests over the zoo, the
    // snapshot rows a test reads, waiting for a condition, the `freshline` binary as a process, the OpenAI Batch API
    // test double. Not a test target, and not Swift Testing: a failure here is a thrown error.
    .target(
        name: "FreshlineTestSupport",
        dependencies: [
            "FreshlineJSON", "FreshlineCore", "FreshlineEngine", "FreshlineRuntime", "FreshlineStore",
            "FreshlineSnapshot",
            "FreshlineTesting",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "NIOCore", package: "swift-nio"),
        ],
        path: "Tests/FreshlineTestSupport",
        swiftSettings: strictSettings
    ),
]

let testTargets: [Target] = [
    .testTarget(
        name: "FreshlineEngineTests",
        dependencies: [
            "FreshlineJSON", "FreshlineEngine", "FreshlineTesting",
        ],
        swiftSettings: strictSettings
    ),
    .testTarget(
        name: "FreshlineSnapshotTests",
        dependencies: [
            "FreshlineJSON", "FreshlineSnapshot", "FreshlineCore", "FreshlineEngine",
        ],
        swiftSettings: strictSettings
    ),
    .testTarget(
        name: "FreshlineJSONTests",
        dependencies: ["FreshlineJSON"],
        swiftSettings: strictSettings
    ),
    .testTarget(
        name: "FreshlineDemoTests",
        dependencies: ["FreshlineDemo"],
        swiftSettings: strictSettings
    ),
    .testTarget(
        name: "FreshlineCoreTests",
        dependencies: [
            "FreshlineJSON", "FreshlineCore",
        ],
        swiftSettings: strictSettings
    ),
    // The upstream client against pure state machines, a fault-injecting test double, and (suite
    // UpstreamServerTests) real MLServer and llama-cpp-python servers started by scripts/upstreams.sh.
    .testTarget(
        name: "FreshlineUpstreamTests",
        dependencies: [
            "FreshlineJSON",
            "FreshlineUpstream", "FreshlineCore", "FreshlineEngine", "FreshlineTesting",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "MetricsTestKit", package: "swift-metrics"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ],
        swiftSettings: strictSettings
    ),
    .testTarget(
        name: "FreshlineServingTests",
        dependencies: [
            "FreshlineJSON",
            "FreshlineCore", "FreshlineRuntime", "FreshlineHTTP", "FreshlineStore", "FreshlinePostgres",
            "FreshlineUpstream", "FreshlineSnapshot", "FreshlineStores",
            "FreshlineTesting", "FreshlineTestSupport",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ],
        swiftSettings: strictSettings
    ),
    // Every test that starts processes of its own: the `freshline` binary (crashes, signals, the command line,
    // the cluster), a private PostgreSQL (scripts/pg.sh), MLServer and llama-cpp-python (scripts/upstreams.sh).
    // `make test` runs this target in passes of its own, selected by the target's name.
    .testTarget(
        name: "FreshlineIntegrationTests",
        dependencies: [
            "FreshlineJSON", "FreshlineCore", "FreshlineEngine", "FreshlineRuntime", "FreshlineHTTP", "FreshlineStore",
            "FreshlineStores",
            "FreshlinePostgres", "FreshlineUpstream", "FreshlineSnapshot", "FreshlineTesting",
            "FreshlineTestSupport",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "MetricsTestKit", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ],
        swiftSettings: strictSettings
    ),
]

let package = Package(
    name: "freshline",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "freshline", targets: ["freshline"]),
        .library(name: "FreshlineJSON", targets: ["FreshlineJSON"]),
        .library(name: "FreshlineCore", targets: ["FreshlineCore"]),
        .library(name: "FreshlineEngine", targets: ["FreshlineEngine"]),
        .library(name: "FreshlineStore", targets: ["FreshlineStore"]),
        .library(name: "FreshlinePostgres", targets: ["FreshlinePostgres"]),
        .library(name: "FreshlineUpstream", targets: ["FreshlineUpstream"]),
        .library(name: "FreshlineSnapshot", targets: ["FreshlineSnapshot"]),
        .library(name: "FreshlineRuntime", targets: ["FreshlineRuntime"]),
        .library(name: "FreshlineStores", targets: ["FreshlineStores"]),
        .library(name: "FreshlineHTTP", targets: ["FreshlineHTTP"]),
        .library(name: "FreshlineTesting", targets: ["FreshlineTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
    ],
    targets: libraryTargets + testTargets
)
