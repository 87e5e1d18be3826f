import Benchmark
import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import FreshlineRuntime

/// Guards for the hand-written fast paths, each written for a measured reason: the JSON reader and writer (Codable
/// cost 30% of the server's CPU), the decimal reader (Clinger's fast path, SWAR digit runs) and the batch runner's
/// columnar CSV path (cells parsed from the mapped bytes straight into tensors, no per-cell strings). Their malloc
/// counts and wall-clock times are checked against Benchmarks/Thresholds by `make bench-check`; every input is
/// made here from a fixed seed, so the counts are the same on every run.
let benchmarks: @Sendable () -> Void = {
    // Malloc counts are the same on every run (the inputs are fixed): exact. Wall-clock time is not, on a shared
    // 2-core machine, so its p90 may grow up to 2× before the check fails (+100%; a relative threshold this wide can
    // never read as "better"): that still catches a lost fast path, which costs 2–8× (the record path against the
    // columnar one here), while a loaded machine does not fail it (bench/RESULTS.md has the run-to-run spread).
    let thresholds: [BenchmarkMetric: BenchmarkThresholds] = [
        .mallocCountTotal: .init(absolute: [.p90: 0]),
        .wallClock: .init(relative: [.p90: 100]),
    ]
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal], warmupIterations: 3, maxDuration: .seconds(1),
        maxIterations: 10_000, thresholds: thresholds)

    // The harness's own allocations per sample, to read the counts below against (a benchmark of one iteration
    // per sample includes them; a `.kilo` one divides them by 1,000).
    Benchmark("Empty") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(benchmark) }
    }

    // JSON: a typical single-row predict body, a 64-row one, and a typical answer.
    let row = FastPathInputs.predictRow(key: "u123", seed: 1)
    let single = Array("{\"key\":\"u123\",\"inputs\":\(row)}".utf8)
    let rows = (0..<64).map { "{\"key\":\"u\($0)\",\"inputs\":\(FastPathInputs.predictRow(key: "u\($0)", seed: $0))}" }
    let many = Array("{\"rows\":[\(rows.joined(separator: ","))]}".utf8)
    Benchmark("JSONParsePredict1Row", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try JSONValue.parse(single)) }
    }
    Benchmark("JSONParsePredict64Rows") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try JSONValue.parse(many)) }
    }
    let answer = FastPathInputs.answer()
    Benchmark("JSONSerializeAnswer", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(answer.serialized()) }
    }

    // The decimal reader over a column of 4,096 typical CSV cells (the bytes of one cell after another, with commas).
    let (column, cellStarts, cellEnds) = FastPathInputs.decimalColumn(cells: 4096)
    Benchmark("DecimalTextParse4096Cells") { benchmark in
        column.withUnsafeBytes { raw in
            for _ in benchmark.scaledIterations {
                var sum = 0.0
                for c in 0..<cellStarts.count {
                    if case .number(let d)? = DecimalText.parse(
                        UnsafeRawBufferPointer(rebasing: raw[cellStarts[c]..<cellEnds[c]]))
                    {
                        sum += d
                    }
                }
                blackHole(sum)
            }
        }
    }
    Benchmark("DecimalTextShortCell4096Cells") { benchmark in
        column.withUnsafeBufferPointer { bytes in
            for _ in benchmark.scaledIterations {
                var sum = 0.0
                var position = 0
                while let cell = DecimalText.shortDecimalCell(
                    bytes.baseAddress!, from: position, rowEnd: cellEnds.last!, readable: bytes.count)
                {
                    sum += cell.value
                    position = cell.end + 1
                }
                blackHole(sum)
            }
        }
    }

    // The batch runner's compute step over one 4,096-row chunk of 30 float columns and a key, through the identity
    // model (so the model costs little next to the reading): the columnar path, and the general record path it
    // replaced.
    let csv = FastPathInputs.csvFile(rows: 4096, columns: 30)
    let model = FastPathInputs.identityModel()
    let batch = BatchSpec(
        source: .csv(path: csv), keyColumn: "id", columns: ["X": .columns((0..<30).map { "f\($0)" })],
        chunkRows: 4096, location: SourceLocation(file: "bench.yaml", line: 1, keyPath: "batch"))
    for columnar in [true, false] {
        let name = columnar ? "CSVChunkColumnar4096x30" : "CSVChunkRecords4096x30"
        Benchmark(name, configuration: .init(maxIterations: columnar ? 200 : 20)) { benchmark in
            for _ in benchmark.scaledIterations {
                let (written, failed) = try BatchRunner.computeCSVChunk(batch: batch, model: model, columnar: columnar)
                precondition(written == 4096 && failed == 0, "\(written) rows written, \(failed) failed")
            }
        }
    }
}

/// The inputs, made from fixed seeds.
enum FastPathInputs {
    /// A small linear congruential generator: the same numbers on every run and machine.
    struct Numbers {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        /// A typical numeric cell, `[-]d{1,3}.d{2,6}`.
        mutating func cell() -> String {
            let whole = next() % [10, 100, 1000][Int(next() % 3)]
            let fractionDigits = 2 + Int(next() % 5)
            var fraction = String(next() % UInt64(pow(10, Double(fractionDigits))))
            fraction = String(repeating: "0", count: fractionDigits - fraction.count) + fraction
            return (next() % 2 == 0 ? "-" : "") + "\(whole).\(fraction)"
        }
    }

    /// `{"x":[30 numbers]}`, a predict row's inputs.
    static func predictRow(key: String, seed: Int) -> String {
        var numbers = Numbers(state: UInt64(seed))
        return "{\"x\":[" + (0..<30).map { _ in numbers.cell() }.joined(separator: ",") + "]}"
    }

    /// A single-row answer as the server writes it (keys sorted by the writer).
    static func answer() -> JSONValue {
        .object([
            "age_seconds": .number(312.25), "computed_at": .string("2025-03-14T09:26:53Z"),
            "feature": .string("churn"), "key": .string("u123"), "model_version": .string("2025-03-14-a1b2c3"),
            "outputs": .object([
                "label": .integer(1), "probabilities": .array([.number(0.18274913), .number(0.81725087)]),
            ]),
            "snapshot": .string("snap-2025-03-14-0001"), "source": .string("snapshot"), "stale": .bool(false),
        ])
    }

    /// `cells` typical cells joined by commas, and each cell's byte range.
    static func decimalColumn(cells: Int) -> ([UInt8], [Int], [Int]) {
        var numbers = Numbers(state: 42)
        var bytes: [UInt8] = []
        var starts: [Int] = []
        var ends: [Int] = []
        for c in 0..<cells {
            if c > 0 { bytes.append(UInt8(ascii: ",")) }
            starts.append(bytes.count)
            bytes.append(contentsOf: numbers.cell().utf8)
            ends.append(bytes.count)
        }
        // Readable bytes past the last cell, as a mapped file has after its last line (shortDecimalCell reads 16).
        bytes.append(contentsOf: [UInt8](repeating: UInt8(ascii: "\n"), count: 16))
        return (bytes, starts, ends)
    }

    /// A CSV file of `rows` rows: a key column `id`, then `columns` float columns `f0`…; written once per process.
    static func csvFile(rows: Int, columns: Int) -> String {
        var numbers = Numbers(state: 7)
        var text = "id," + (0..<columns).map { "f\($0)" }.joined(separator: ",") + "\n"
        for r in 0..<rows {
            text += "u\(r)," + (0..<columns).map { _ in numbers.cell() }.joined(separator: ",") + "\n"
        }
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("freshline-fastpath-\(rows)x\(columns).csv").path
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            fatalError("cannot write \(path): \(error)")
        }
        return path
    }

    /// The zoo's identity model: 30 floats in, the same 30 out.
    static func identityModel() -> Model {
        let zoo = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("Tests/Fixtures/zoo")
        guard let model = try? Model(contentsOf: zoo.appendingPathComponent("identity.onnx")) else {
            fatalError("cannot load identity.onnx from \(zoo.path)")
        }
        return model
    }
}
