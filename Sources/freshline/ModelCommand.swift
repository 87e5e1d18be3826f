import ArgumentParser
import Foundation
import FreshlineEngine
import FreshlineJSON

/// `freshline model …`: look at a model file and try it.
struct ModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Inspect, run and time ONNX models.",
        subcommands: [Inspect.self, Run.self, Bench.self]
    )

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a model's inputs, outputs, operators, size and version.")

        @Argument(help: "The ONNX file.") var file: String
        @Flag(help: "Print JSON instead of text.") var json = false

        func run() throws {
            let model = try loadModel(file)
            let m = model.metadata
            if json {
                let object: JSONValue = .object([
                    "file": .string(file),
                    "version": .string(m.version),
                    "sha256": .string(m.sha256),
                    "size_bytes": .integer(Int64(m.sizeBytes)),
                    "producer": .string(m.producer),
                    "ir_version": .integer(Int64(m.irVersion)),
                    "opsets": .object(m.opsets.mapValues { .integer(Int64($0)) }),
                    "operators": .object(m.operators.mapValues { .integer(Int64($0)) }),
                    "inputs": .array(m.inputs.map(describe)),
                    "outputs": .array(m.outputs.map(describe)),
                ])
                print(encodeLine(object))
                return
            }
            print("model     \(file)")
            print("version   \(m.version) (sha256 \(m.sha256))")
            print("size      \(m.sizeBytes) bytes")
            print("producer  \(m.producer.isEmpty ? "-" : m.producer), IR \(m.irVersion)")
            print(
                "opsets    "
                    + m.opsets.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            print("inputs")
            for i in m.inputs { print("  \(i.name): \(i.type)") }
            print("outputs")
            for o in m.outputs { print("  \(o.name): \(o.type)") }
            print("operators")
            for (op, count) in m.operators.sorted(by: { $0.key < $1.key }) { print("  \(op) ×\(count)") }
        }

        private func describe(_ info: ModelMetadata.ValueInfo) -> JSONValue {
            var object: [String: JSONValue] = ["name": .string(info.name), "type": .string(info.type.description)]
            switch info.type {
            case .tensor(let element, let shape):
                object["element_type"] = .string(element.description)
                object["shape"] = shape.map { .array($0.map { .integer(Int64($0)) }) } ?? .null
            case .mapSequence(let key, let value):
                object["element_type"] = .string(value.description)
                object["key_type"] = .string(key.description)
            }
            return .object(object)
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Run a model on JSON Lines rows: one object of named inputs per line in, one of named outputs per line out."
        )

        @Argument(help: "The ONNX file.") var file: String
        @Option(help: "JSON Lines input file ('-' for standard input).") var input: String
        @Option(help: "Rows per model call.") var batchSize = 256

        func validate() throws {
            guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        }

        func run() throws {
            let model = try loadModel(file)
            let text: String
            if input == "-" {
                var lines: [String] = []
                while let line = readLine(strippingNewline: false) { lines.append(line) }
                text = lines.joined()
            } else {
                guard let data = FileManager.default.contents(atPath: input) else {
                    throw CLIError("cannot read \(input)")
                }
                text = String(decoding: data, as: UTF8.self)
            }
            var batch: [[String: JSONValue]] = []
            var firstLine = 1
            func flush() throws {
                guard !batch.isEmpty else { return }
                do {
                    let feeds = try RowBatch.tensors(rows: batch, inputs: model.metadata.inputs)
                    let outputs = try model.run(feeds)
                    for row in try RowBatch.rows(outputs: outputs, count: batch.count) {
                        print(encodeLine(.object(row)))
                    }
                } catch let error as EngineError {
                    throw CLIError("\(input): rows \(firstLine)–\(firstLine + batch.count - 1): \(error.message)")
                }
                batch.removeAll(keepingCapacity: true)
            }
            for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                if line.allSatisfy(\.isWhitespace) { continue }
                if batch.isEmpty { firstLine = index + 1 }
                guard case .object(let row)? = try? JSONValue.parse(line.utf8) else {
                    throw CLIError("\(input):\(index + 1): not a JSON object of named inputs")
                }
                batch.append(row)
                if batch.count == batchSize { try flush() }
            }
            try flush()
        }
    }

    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time the model on random inputs of its declared types (one thread) and print the time per row.")

        @Argument(help: "The ONNX file.") var file: String
        @Option(help: "Rows per call.") var batchSize = 1
        @Option(help: "Seconds to measure.") var seconds = 2.0
        @Option(help: "Integer inputs are drawn from 0..<N (ids for embedding tables).") var integerRange = 2
        @Option(help: "Rows to time instead of random ones: JSON Lines of named inputs, cycled to the batch size.")
        var inputs: String?
        @Flag(help: "Print one JSON object.") var json = false

        func validate() throws {
            guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
            guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
            guard integerRange >= 1 else { throw ValidationError("--integer-range must be at least 1") }
        }

        func run() throws {
            let model = try loadModel(file)
            var feeds = try model.syntheticFeeds(batchSize: batchSize, integerRange: integerRange)
            if let inputs {
                guard let text = try? String(contentsOfFile: inputs, encoding: .utf8) else {
                    throw CLIError("\(inputs): cannot read the file")
                }
                var rows: [[String: JSONValue]] = []
                for (index, line) in text.split(separator: "\n").enumerated() where !line.isEmpty {
                    guard case .object(let row) = try? JSONValue.parse(Array(line.utf8)) else {
                        throw CLIError("\(inputs):\(index + 1): expected a JSON object of named inputs")
                    }
                    rows.append(row)
                }
                guard !rows.isEmpty else { throw CLIError("\(inputs): no rows") }
                let batch = (0..<batchSize).map { rows[$0 % rows.count] }
                do { feeds = try RowBatch.tensors(rows: batch, inputs: model.metadata.inputs) } catch let error
                    as EngineError
                {
                    throw CLIError("\(inputs): \(error.message)")
                }
            }
            let m = try model.measure(feeds: feeds, seconds: seconds)
            if json {
                print(
                    encodeLine(
                        .object([
                            "batch_size": .integer(Int64(m.batchSize)), "calls": .integer(Int64(m.calls)),
                            "per_call_ns": .number(m.perCallNanoseconds.rounded()),
                            "per_row_ns": .number((m.perRowNanoseconds * 10).rounded() / 10),
                        ])))
            } else {
                print(
                    String(
                        format: "%@  batch %d: %.2f µs per call, %.3f µs per row (%d calls)",
                        file, m.batchSize, m.perCallNanoseconds / 1000, m.perRowNanoseconds / 1000, m.calls))
            }
        }
    }
}

/// A message for the user, printed without a stack of wrappers; the CLI exits with status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func loadModel(_ path: String) throws -> Model {
    do {
        return try Model(contentsOf: URL(fileURLWithPath: path))
    } catch let error as EngineError {
        throw CLIError("\(path): \(error.message)")
    }
}

func encodeLine(_ value: JSONValue) -> String {
    String(decoding: value.serialized(), as: UTF8.self)
}
