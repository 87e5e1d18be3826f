import Foundation
import FreshlineTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// SIGTERM to `freshline serve` while a client follows a job's event stream and another waits with
/// `Prefer: wait=60`: both end at once with the job's current state, and the process exits well within
/// `server.shutdown_timeout` (an open stream used to hold SIGTERM for over a minute).
@Suite("Graceful shutdown")
struct ShutdownTests {
    @Test("SIGTERM ends event streams and Prefer: wait with the current state, and the server exits promptly")
    func sigtermWithOpenStreams() async throws {
        guard FileManager.default.isExecutableFile(atPath: FreshlineProcess.binary) else {
            Issue.record(
                "no freshline binary at \(FreshlineProcess.binary): build it (swift build --build-tests) first")
            return
        }
        let port = Int.random(in: 20_000..<60_000)
        // No job workers: the jobs stay queued, so the stream and the wait have nothing to end them but shutdown.
        let manifestPath = try TestManifest.write(
            """
            version: 1
            models:
              gbdt: ZOO/gbc_binary.onnx
            features:
              report:
                model: gbdt
                pattern: async
            server:
              port: \(port)
              job_workers: 0
              shutdown_timeout: 20s
            store: state.sqlite
            """)
        let folder = URL(fileURLWithPath: manifestPath).deletingLastPathComponent()
        let server = try FreshlineProcess.start(["serve", manifestPath], in: folder)
        defer { if server.isRunning { kill(server.processIdentifier, SIGKILL) } }
        let start = ContinuousClock.now
        var up = false
        while ContinuousClock.now - start < .seconds(60) && server.isRunning && !up {
            if let probe = try? RawSocket(port: port) {
                try probe.send("GET /healthz/live HTTP/1.1\r\nHost: t\r\n\r\n")
                up = probe.receive(timeout: 5).hasPrefix("HTTP/1.1 200")
                probe.close()
            }
            if !up { try await Task.sleep(for: .milliseconds(200)) }
        }
        try #require(up, "the server did not start: \(FreshlineProcess.output(server))")

        let x = "[0.5,-1.2,0.3,2.0,0.0,1.1,-0.4,0.9,0.2,-2.2,1.5,0.7,-0.1,0.05,1.9,-0.6]"
        let body = #"{"inputs": {"X": \#(x)}}"#
        func post(_ extra: String) throws -> RawSocket {
            let socket = try RawSocket(port: port)
            try socket.send(
                "POST /v1/features/report/jobs HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\(extra)"
                    + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
            return socket
        }
        let submit = try post("")
        let accepted = submit.receive(until: { $0.contains("job_") && $0.contains("}") }, timeout: 30)
        let id = try #require(
            accepted.range(of: #"job_[0-9a-f]+"#, options: .regularExpression).map { String(accepted[$0]) },
            "\(accepted)")
        submit.close()

        let stream = try RawSocket(port: port)
        try stream.send("GET /v1/jobs/\(id)/events HTTP/1.1\r\nHost: t\r\n\r\n")
        let opened = stream.receive(until: { $0.contains("event: progress") }, timeout: 30)
        #expect(opened.contains("event: progress") && opened.contains(#""state":"queued""#), "\(opened)")
        let waiting = try post("Prefer: wait=60\r\n")
        try await Task.sleep(for: .milliseconds(500))

        let term = ContinuousClock.now
        kill(server.processIdentifier, SIGTERM)
        let waited = waiting.receive(until: { $0.contains(#""state":"queued""#) }, timeout: 30)
        #expect(waited.hasPrefix("HTTP/1.1 202"), "Prefer: wait answered \(waited.prefix(200))")
        #expect(waited.contains(#""state":"queued""#))
        var rest = ""
        while !stream.closedByPeer && ContinuousClock.now - term < .seconds(30) {
            rest += stream.receive(timeout: 30)
        }
        #expect(stream.closedByPeer, "the event stream was not ended: \(rest)")
        while server.isRunning && ContinuousClock.now - term < .seconds(30) {
            try await Task.sleep(for: .milliseconds(50))
        }
        let took = ContinuousClock.now - term
        #expect(!server.isRunning, "still running \(took) after SIGTERM")
        #expect(took < .seconds(10), "SIGTERM took \(took)")
        #expect(server.terminationStatus == 0, "\(FreshlineProcess.output(server))")
        waiting.close()
        stream.close()
    }
}
