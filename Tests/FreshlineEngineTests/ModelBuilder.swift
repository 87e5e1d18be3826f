import Foundation
import SwiftProtobuf

@testable import FreshlineEngine

/// Builds small ONNX models in code, for tests of the loader and the operators.
struct ModelBuilder {
    var model = Onnx_ModelProto()

    init(opset: Int64 = 17, mlOpset: Int64? = nil) {
        model.irVersion = 8
        var o = Onnx_OperatorSetIdProto()
        o.domain = ""
        o.version = opset
        model.opsetImport = [o]
        if let mlOpset {
            var ml = Onnx_OperatorSetIdProto()
            ml.domain = "ai.onnx.ml"
            ml.version = mlOpset
            model.opsetImport.append(ml)
        }
        model.graph = Onnx_GraphProto()
    }

    static func valueInfo(_ name: String, _ type: ElementType, _ dims: [Int64?]) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = type.rawValue
        var shape = Onnx_TensorShapeProto()
        shape.dim = dims.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            if let d { dim.dimValue = d } else { dim.dimParam = "N" }
            return dim
        }
        t.shape = shape
        v.type.tensorType = t
        return v
    }

    mutating func input(_ name: String, _ type: ElementType = .float, _ dims: [Int64?]) {
        model.graph.input.append(Self.valueInfo(name, type, dims))
    }

    mutating func output(_ name: String, _ type: ElementType = .float, _ dims: [Int64?]) {
        model.graph.output.append(Self.valueInfo(name, type, dims))
    }

    mutating func initializer(_ name: String, dims: [Int64], floats: [Float]) {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = dims
        t.dataType = ElementType.float.rawValue
        t.floatData = floats
        model.graph.initializer.append(t)
    }

    mutating func initializer(_ name: String, dims: [Int64], int64s: [Int64]) {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = dims
        t.dataType = ElementType.int64.rawValue
        t.int64Data = int64s
        model.graph.initializer.append(t)
    }

    mutating func node(
        _ op: String, _ inputs: [String], _ outputs: [String], domain: String = "", name: String = "",
        attributes: [Onnx_AttributeProto] = []
    ) {
        var n = Onnx_NodeProto()
        n.opType = op
        n.input = inputs
        n.output = outputs
        n.domain = domain
        n.name = name
        n.attribute = attributes
        model.graph.node.append(n)
    }

    func data() throws -> Data { try model.serializedData() }
    func load() throws -> Model { try Model(data: try data()) }
}
