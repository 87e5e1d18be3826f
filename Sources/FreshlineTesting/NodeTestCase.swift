public import Foundation
import FreshlineEngine

/// One case of the ONNX backend node tests: `model.onnx` plus `test_data_set_0/input_*.pb` and `output_*.pb`.
public struct NodeTestCase: Sendable {
    /// The folder name, e.g. `test_gemm_default_no_bias`.
    public let name: String
    /// The case's folder.
    public let directory: URL

    /// Makes a case from its folder.
    public init(directory: URL) {
        self.directory = directory
        self.name = directory.lastPathComponent
    }

    /// Loads the model, runs it on the inputs and compares every output; returns `nil` on a pass, otherwise
    /// why it failed (a load error, a run error, or the first difference).
    public func failure(tolerance: Tolerance = .onnxBackend) -> String? {
        let model: Model
        do { model = try Model(contentsOf: directory.appendingPathComponent("model.onnx")) } catch {
            return "load: \(error)"
        }
        let data = directory.appendingPathComponent("test_data_set_0")
        do {
            var feeds: [String: Tensor] = [:]
            for (i, input) in model.metadata.inputs.enumerated() {
                feeds[input.name] = try tensor(data.appendingPathComponent("input_\(i).pb"))
            }
            let outputs = try model.run(feeds)
            for (i, output) in model.metadata.outputs.enumerated() {
                let expected = try tensor(data.appendingPathComponent("output_\(i).pb"))
                guard let actual = outputs[output.name]?.tensor else { return "output '\(output.name)' missing" }
                if let difference = TensorComparison.difference(actual, expected, tolerance: tolerance) {
                    return "output '\(output.name)': \(difference)"
                }
            }
            return nil
        } catch {
            return "run: \(error)"
        }
    }

    private func tensor(_ url: URL) throws -> Tensor {
        try Tensor(serializedTensorProto: try Data(contentsOf: url))
    }

    /// Every case folder below `root`, sorted by name.
    public static func all(in root: URL) throws -> [NodeTestCase] {
        try FileManager.default.contentsOfDirectory(at: root, includingPropertiesForKeys: nil)
            .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("model.onnx").path) }
            .map(NodeTestCase.init)
            .sorted { $0.name < $1.name }
    }
}
