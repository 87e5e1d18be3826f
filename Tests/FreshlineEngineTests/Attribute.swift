import Foundation

@testable import FreshlineEngine

/// ONNX attributes for tests that build nodes and models in code.
enum Attribute {
    static func ints(_ name: String, _ values: [Int64]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .ints
        a.ints = values
        return a
    }

    static func floats(_ name: String, _ values: [Float]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .floats
        a.floats = values
        return a
    }

    static func strings(_ name: String, _ values: [String]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .strings
        a.strings = values.map { Data($0.utf8) }
        return a
    }

    static func string(_ name: String, _ value: String) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .string
        a.s = Data(value.utf8)
        return a
    }

    static func int(_ name: String, _ value: Int64) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .int
        a.i = value
        return a
    }

    static func float(_ name: String, _ value: Float) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .float
        a.f = value
        return a
    }

    static func tensor(_ name: String, doubles: [Double]) -> Onnx_AttributeProto {
        var t = Onnx_TensorProto()
        t.dims = [Int64(doubles.count)]
        t.dataType = ElementType.double.rawValue
        t.doubleData = doubles
        return tensor(name, t)
    }

    static func tensor(_ name: String, floats: [Float]) -> Onnx_AttributeProto {
        var t = Onnx_TensorProto()
        t.dims = [Int64(floats.count)]
        t.dataType = ElementType.float.rawValue
        t.floatData = floats
        return tensor(name, t)
    }

    static func tensor(_ name: String, uint8s: [UInt8]) -> Onnx_AttributeProto {
        var t = Onnx_TensorProto()
        t.dims = [Int64(uint8s.count)]
        t.dataType = ElementType.uint8.rawValue
        t.int32Data = uint8s.map { Int32($0) }
        return tensor(name, t)
    }

    private static func tensor(_ name: String, _ t: Onnx_TensorProto) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .tensor
        a.t = t
        return a
    }
}
