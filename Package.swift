// swift-tools-version: 6.2
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "freshline",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "freshline", targets: ["freshline"]),
        .library(name: "FreshlineEngine", targets: ["FreshlineEngine"]),
        .library(name: "FreshlineTesting", targets: ["FreshlineTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // OpenBLAS on Linux (Debian's libopenblas-dev); on macOS the engine uses Accelerate instead.
        .systemLibrary(
            name: "CBLAS",
            path: "Sources/CBLAS",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .target(
            name: "FreshlineEngine",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .target(name: "CBLAS", condition: .when(platforms: [.linux])),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "freshline",
            dependencies: [
                "FreshlineEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "FreshlineTesting",
            dependencies: ["FreshlineEngine"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "FreshlineEngineTests",
            dependencies: ["FreshlineEngine", "FreshlineTesting"],
            swiftSettings: strictSettings
        ),
    ]
)
