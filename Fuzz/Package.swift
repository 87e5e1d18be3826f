// swift-tools-version: 6.2
// libFuzzer target for the model loader and executor. Build and run (from this folder):
//   swift build -c release --sanitize=fuzzer --product ModelLoaderFuzzer
//   SWIFT_BACKTRACE=enable=no .build/release/ModelLoaderFuzzer corpus/ ../Tests/Fixtures/zoo -max_total_time=600
// (`scripts/fuzz.sh` does both.) Kept out of the main package: a fuzzer has no main() of its own.
import PackageDescription

let package = Package(
    name: "FreshlineFuzz",
    dependencies: [.package(name: "freshline", path: "..")],
    targets: [
        .executableTarget(
            name: "ModelLoaderFuzzer",
            dependencies: [.product(name: "FreshlineEngine", package: "freshline")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        )
    ]
)
