import Benchmark
import Foundation
import FreshlineEngine

/// Per-call cost of zoo models at batch 1, 64 and 1024 (one thread). The zoo lives in Tests/Fixtures/zoo.
let benchmarks: @Sendable () -> Void = {
    let zoo = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Tests/Fixtures/zoo")
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput], maxDuration: .seconds(2))

    for name in ["gbc_binary", "mlp_clf", "xgb_binary", "two_tower"] {
        guard let model = try? Model(contentsOf: zoo.appendingPathComponent("\(name).onnx")) else {
            fatalError("cannot load \(name).onnx from \(zoo.path)")
        }
        for batch in [1, 64, 1024] {
            guard let feeds = try? model.syntheticFeeds(batchSize: batch, integerRange: 500) else {
                fatalError("inputs for \(name)")
            }
            Benchmark("\(name) batch \(batch)") { benchmark in
                for _ in benchmark.scaledIterations {
                    blackHole(try model.run(feeds))
                }
            }
        }
    }
}
