import Foundation

/// Where the committed fixtures live, found from this file's path so that tests need no bundle resources.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let zoo = root.appendingPathComponent("zoo")
    static let onnxNode = root.appendingPathComponent("onnx-node")
    /// The worked example's models (`demo/models`, made by `scripts/make_demo_models.py`).
    static let demoModels = root.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("demo/models")
}
