import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import FreshlineRuntime
import FreshlineSnapshot
import FreshlineStore
import Testing

/// Snapshots served from mapped files: the files a server writes, finds again, replaces and prunes.
@Suite("Snapshot files in serving")
struct SnapshotServingTests {
    /// A store with one feature's published snapshots v1…v`versions` of `keys` keys each (`u0`…; the value of key
    /// `uN` in version V is `{"score": N + V/10}`).
    static func store(versions: Int, keys: Int, retention: Int = 2, serve: Bool = false) async throws -> (
        SQLiteStore, String, [SnapshotInfo]
    ) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("snapserve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: folder.appendingPathComponent("state.sqlite").path)
        var published: [SnapshotInfo] = []
        for version in 1...versions {
            let info = try await SnapshotSealingTests.publish(
                store, version: version, keys: keys, retention: retention,
                row: { #"{"score":\#(Double($0) + Double(version) / 10)}"# })
            published.append(info)
            // As a server would, before the next publish's retention drops this one.
            if serve {
                _ = try await SnapshotTable.load(
                    info, from: store, directory: folder.appendingPathComponent("snapshots").path)
            }
        }
        return (store, folder.appendingPathComponent("snapshots").path, published)
    }

    @Test("the first load writes the file and maps it; the next maps the same file without writing it again")
    func writesOnceThenMaps() async throws {
        let (store, directory, published) = try await Self.store(versions: 1, keys: 2_000)
        let info = try #require(published.last)
        let first = try await SnapshotTable.load(info, from: store, directory: directory)
        let path = try #require(first.file?.path)
        #expect(path == SnapshotFiles.path(for: info, in: directory))
        #expect(first.keyCount == 2_000)
        #expect(first.outputs(for: "u7") == ["score": .number(7.1)])
        #expect(first.outputs(for: "nope") == nil)
        let written = try FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date
        try await Task.sleep(for: .milliseconds(20))
        let second = try await SnapshotTable.load(info, from: store, directory: directory)
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date == written)
        #expect(second.outputs(for: "u1999") == ["score": .number(1999.1)])
        // The same answers as the decoded table the store's rows make.
        let decoded = try await SnapshotTable.load(info, from: store)
        for key in ["u0", "u1", "u500", "u1999"] { #expect(second.outputs(for: key) == decoded.outputs(for: key)) }
    }

    @Test("a torn or foreign file in the folder is replaced from the store, not served")
    func tornFileRewritten() async throws {
        let (store, directory, published) = try await Self.store(versions: 1, keys: 500)
        let info = try #require(published.last)
        let path = SnapshotFiles.path(for: info, in: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        _ = try await SnapshotTable.load(info, from: store, directory: directory)
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: path))  // as a crash mid-copy would leave it
        let table = try await SnapshotTable.load(info, from: store, directory: directory)
        #expect(table.keyCount == 500 && table.outputs(for: "u499") == ["score": .number(499.1)])
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == whole)
    }

    @Test("pruning keeps the retained snapshots' files, removes the rest and dead writers' temporary files only")
    func prune() async throws {
        let (store, directory, published) = try await Self.store(versions: 3, keys: 50, retention: 2, serve: true)
        let other = SnapshotInfo(
            id: 99, feature: "churn-v2", version: 1, runID: "r", modelVersion: "m", inputTime: 0, createdAt: 0,
            publishedAt: nil, keyCount: 0, state: .published)
        try SnapshotFileWriter.write(to: SnapshotFiles.path(for: other, in: directory), info: other, chunks: [])
        let dead = SnapshotFiles.path(for: published[0], in: directory) + ".tmp-999999"
        let live = SnapshotFiles.path(for: published[0], in: directory) + ".tmp-\(getpid())"
        for path in [dead, live] { _ = FileManager.default.createFile(atPath: path, contents: Data([1])) }
        let kept = try await store.snapshots(feature: "churn", limit: 50).filter {
            $0.state == .published || $0.state == .retired
        }
        #expect(kept.map(\.version).sorted() == [2, 3])
        SnapshotFiles.prune(feature: "churn", keep: kept, in: directory)
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: directory))
        let expected: Set<String> = [
            URL(fileURLWithPath: SnapshotFiles.path(for: published[1], in: directory)).lastPathComponent,
            URL(fileURLWithPath: SnapshotFiles.path(for: published[2], in: directory)).lastPathComponent,
            URL(fileURLWithPath: SnapshotFiles.path(for: other, in: directory)).lastPathComponent,
            URL(fileURLWithPath: live).lastPathComponent,
        ]
        #expect(names == expected)
    }

    @Test("a table still held keeps its file mapped after the file is removed (a swap while a lookup runs)")
    func heldTableOutlivesItsFile() async throws {
        let (store, directory, published) = try await Self.store(versions: 1, keys: 100)
        let table = try await SnapshotTable.load(try #require(published.last), from: store, directory: directory)
        try FileManager.default.removeItem(atPath: try #require(table.file?.path))
        #expect(table.outputs(for: "u42") == ["score": .number(42.1)])
    }
}
