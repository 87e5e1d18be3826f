import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import FreshlineTesting
import FreshlineUpstream
import Logging
import MetricsTestKit
import NIOCore
import NIOPosix
import Testing

/// The client against real upstream servers, started by `scripts/upstreams.sh` (MLServer serving the scikit-learn
/// model `sk_binary`: input `X` FP32 [-1, 16], outputs `predict` INT64 [-1, 1] and `predict_proba` FP32 [-1, 2];
/// llama-cpp-python serving a tiny random-weight GGUF as `tiny-chat` and `tiny-embed`, n_embd 64). The script
/// installs what is missing (the first run compiles llama.cpp: minutes). These tests fail, never skip, when the
/// servers cannot be started. Alone: `swift test --filter FreshlineIntegrationTests.UpstreamServerTests`.
@Suite("UpstreamServerTests: real MLServer and llama-cpp-python servers", .serialized, .timeLimit(.minutes(10)))
struct UpstreamServerTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let logger: Logger = {
        var logger = Logger(label: "freshline.test.upstream-servers")
        logger.logLevel = .warning
        return logger
    }()

    /// Runs `scripts/upstreams.sh` with `arguments`; its standard output, or an error with its standard error.
    @discardableResult
    static func script(_ arguments: [String]) throws -> String {
        try ScriptRunner.run("upstreams.sh", arguments)
    }

    /// Starts a server with `start-KIND`, runs `body` with its URL, and stops it however `body` ends.
    static func withServer(_ kind: String, _ body: (String) async throws -> Void) async throws {
        let (url, port) = try ScriptRunner.startUpstream(kind)
        do { try await body(url) } catch {
            _ = try? script(["stop", String(port)])
            throw error
        }
        try script(["stop", String(port)])
    }

    static func with(_ spec: ModelSpec, _ body: (any RemoteModel) async throws -> Void) async throws {
        let model = try await Upstreams.connect(spec, environment: [:], logger: logger, metrics: TestMetrics())
        do { try await body(model) } catch {
            await model.shutdown()
            throw error
        }
        await model.shutdown()
    }

    static func location() -> FreshlineCore.SourceLocation {
        FreshlineCore.SourceLocation(file: "upstreams.yaml", line: 1, keyPath: "models")
    }

    @Test("MLServer: metadata read over OIP, a 3-row inference answers predict and predict_proba consistently")
    func mlserver() async throws {
        try await Self.withServer("mlserver") { url in
            var upstream = UpstreamSpec(kind: .oip, url: url)
            upstream.model = "sk_binary"
            try await Self.with(ModelSpec(name: "sk", upstream: upstream, location: Self.location())) { model in
                #expect(model.metadata.inputs == [.init(name: "X", type: .tensor(.float, shape: [-1, 16]))])
                #expect(
                    model.metadata.outputs == [
                        .init(name: "predict", type: .tensor(.int64, shape: [-1, 1])),
                        .init(name: "predict_proba", type: .tensor(.float, shape: [-1, 2])),
                    ])
                let rows: [Float] = (0..<48).map { Float(($0 * 37) % 17) / 8 - 1 }
                let answer = try await model.infer(
                    ["X": try Tensor(shape: [3, 16], floats: rows)], rows: 3, priority: .realtime,
                    deadline: .now + .seconds(30))
                let predict = try #require(answer.outputs["predict"]?.tensor)
                let proba = try #require(answer.outputs["predict_proba"]?.tensor)
                #expect(predict.shape == [3, 1])
                #expect(proba.shape == [3, 2])
                let p = try #require(proba.floats)
                for row in 0..<3 {
                    #expect(abs(p[2 * row] + p[2 * row + 1] - 1) < 1e-4)
                    #expect(predict.int64s?[row] == (p[2 * row + 1] > p[2 * row] ? 1 : 0))
                }
                #expect(answer.modelVersion == "sk_binary:1")
            }
        }
    }

    @Test("llama-cpp-python: chat text with usage and version, structured output parsed, embeddings of 64 dimensions")
    func llama() async throws {
        try await Self.withServer("llama") { url in
            var chat = UpstreamSpec(kind: .openai, url: url + "/v1")
            chat.model = "tiny-chat"
            chat.messages = [.init(role: "user", content: "Say something about {{topic}}.")]
            chat.maxTokens = 8
            chat.temperature = 0
            chat.limits = UpstreamLimits(maxConnections: 2)
            try await Self.with(ModelSpec(name: "chat", upstream: chat, location: Self.location())) { model in
                let answer = try await model.infer(
                    ["topic": try Tensor(shape: [2], strings: ["tea", "rain"])], rows: 2, priority: .realtime,
                    deadline: .now + .seconds(120))
                #expect(answer.outputs["text"]?.tensor?.shape == [2])
                #expect(answer.usage.count == 2)
                #expect(answer.usage.allSatisfy { $0.input > 0 && $0.output > 0 })
                #expect(answer.modelVersion.isEmpty == false)
            }

            var structured = chat
            structured.maxTokens = 48
            structured.responseSchema = .object([
                "type": .string("object"),
                "properties": .object([
                    "ok": .object(["type": .string("boolean")]),
                    "label": .object(["type": .string("string"), "enum": .array([.string("yes"), .string("no")])]),
                ]),
                "required": .array([.string("ok"), .string("label")]),
                "additionalProperties": .bool(false),
            ])
            try await Self.with(ModelSpec(name: "structured", upstream: structured, location: Self.location())) {
                model in
                #expect(model.metadata.outputs.map(\.name) == ["label", "ok"])
                let answer = try await model.infer(
                    ["topic": try Tensor(shape: [1], strings: ["tea"])], rows: 1, priority: .realtime,
                    deadline: .now + .seconds(120))
                let label = try #require(answer.outputs["label"]?.tensor?.strings?.first)
                #expect(label == "yes" || label == "no")
                #expect(answer.outputs["ok"]?.tensor?.elementType == .bool)
            }

            var embed = UpstreamSpec(kind: .openai, url: url + "/v1")
            embed.model = "tiny-embed"
            embed.endpoint = .embeddings
            embed.inputTemplate = "{{text}}"
            try await Self.with(ModelSpec(name: "embed", upstream: embed, location: Self.location())) { model in
                #expect(model.metadata.outputs == [.init(name: "embedding", type: .tensor(.float, shape: [-1, 64]))])
                let answer = try await model.infer(
                    ["text": try Tensor(shape: [3], strings: ["a", "tea time", "rain"])], rows: 3, priority: .batch,
                    deadline: .now + .seconds(120))
                let embedding = try #require(answer.outputs["embedding"]?.tensor)
                #expect(embedding.shape == [3, 64])
                #expect(embedding.floats?.allSatisfy(\.isFinite) == true)
            }
        }
    }
}
