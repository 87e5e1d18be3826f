// The overhead floor for bench/serving-load: a bare Hummingbird endpoint on the same HTTP stack as
// Freshline (Hummingbird 2 on SwiftNIO, default event loops), with no model, no JSON decoding and no
// batching. `POST /` reads the whole request body and answers a constant `{"ok":true}`.
//
//   swift build -c release --package-path Benchmarks --product BareEndpoint
//   Benchmarks/.build/release/BareEndpoint PORT [HOST]      (HOST defaults to 127.0.0.1)
//
// GET /health answers 200 so a driver can wait for it to listen.
import Foundation
import Hummingbird

@main
struct BareEndpoint {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2, let port = Int(arguments[1]), (1...65_535).contains(port) else {
            FileHandle.standardError.write(Data("usage: BareEndpoint PORT [HOST]\n".utf8))
            exit(2)
        }
        let host = arguments.count >= 3 ? arguments[2] : "127.0.0.1"

        let router = Router()
        let answer = ByteBuffer(string: #"{"ok":true}"#)
        router.post("/") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 20)
            _ = body.readableBytes
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: answer))
        }
        router.get("/health") { _, _ in HTTPResponse.Status.ok }

        // Hummingbird's default logger (level from LOG_LEVEL, default info) logs start-up only: no request logging.
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "bare-endpoint")
        )
        try await app.runService()
    }
}
