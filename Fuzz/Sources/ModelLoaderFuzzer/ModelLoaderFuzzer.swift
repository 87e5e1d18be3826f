import Foundation
import FreshlineEngine

/// Feeds arbitrary bytes to the loader; a model that loads is run on small synthetic inputs. Any crash,
/// trap or sanitizer report is a bug: hostile files must produce `EngineError`s.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzModelLoader(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: bytes, count: count)
    guard let model = try? Model(data: data) else { return 0 }
    if let feeds = try? model.syntheticFeeds(batchSize: 2, integerRange: 4) {
        _ = try? model.run(feeds)
    }
    return 0
}
