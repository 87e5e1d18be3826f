import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import FreshlineRuntime
import FreshlineSnapshot
import Testing

/// Sealed snapshots on both stores: the file recorded (and, in PostgreSQL, kept in parts), the chunks dropped, a
/// second host materialising the file, a second sealer changing nothing, retention taking the parts.
@Suite("Sealed snapshots")
struct SnapshotSealingTests {
    /// Publishes one snapshot of `keys` keys (`u0`…; by default `{"score": N + version/10, "tag": "tN"}`) of
    /// feature `churn`.
    static func publish(
        _ store: any BatchStore, version: Int, keys: Int, retention: Int = 5,
        row: ((Int) -> String)? = nil
    ) async throws -> SnapshotInfo {
        let row = row ?? { #"{"score":\#(Double($0) + Double(version) / 10),"tag":"t\#($0)"}"# }
        let t = Double(1000 * version)
        let run = try await store.startRun(
            BatchRun(
                id: "run_\(version)", feature: "churn", trigger: .manual, snapshotID: 0, startedAt: t,
                heartbeatAt: t, owner: "test:1"),
            modelVersion: "m:1", inputTime: t, copyFrom: nil, liveAfter: t - 60, isGone: { _ in false })
        _ = try await store.splitRun(runID: run.id, rowsTotal: keys, rangeRows: keys, at: t)
        _ = try #require(
            try await store.leaseRange(
                features: ["churn"], owner: "test:1", now: t, leaseSeconds: 60, isGone: { _ in false }))
        let rows = (0..<keys).map { Array(row($0).utf8) }
        try await store.appendRangeChunk(
            runID: run.id, index: 0, owner: "test:1",
            chunk: SnapshotChunk(index: 0, keys: (0..<keys).map { "u\($0)" }, packedOutputs: PackedRows(rows)),
            failures: [],
            progress: RangeProgress(
                rangeRowsDone: keys, rowsRead: keys, rowsWritten: keys, rowsFailed: 0, busySeconds: 0, at: t))
        guard
            case .published(let info) = try await store.completeRange(
                runID: run.id, index: 0, owner: "test:1", at: t, retention: retention, policy: .unguarded)
        else { throw DoubleFailure("v\(version) did not publish") }
        return info
    }

    static func folder() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("seal-\(UUID().uuidString)").path
    }

    @Test(
        "sealing records the file and drops the chunks; another host materialises it (PostgreSQL) or finds it gone (SQLite); a second seal changes nothing",
        arguments: StoreKind.allCases)
    func sealAndMaterialise(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            let info = try await Self.publish(store, version: 1, keys: 3_000)
            let (hostA, hostB) = (Self.folder(), Self.folder())
            defer { for host in [hostA, hostB] { try? FileManager.default.removeItem(atPath: host) } }
            // Small parts, so that the file goes up and comes down in several.
            let a = SnapshotStorage(store: store, directory: hostA, partBytes: 16 << 10)
            let before = try await a.open(info)
            let sealed = try await a.seal(info)
            #expect(sealed.file == SnapshotInfo.SealedFile(checksum: before.checksum, size: before.fileBytes))
            #expect(try await store.snapshot(id: info.id) == sealed)
            #expect(try await store.chunks(snapshotID: info.id).isEmpty)
            #expect(try await store.publishedSnapshot(feature: "churn")?.file == sealed.file)
            let parts = try await store.snapshotFilePartCount(snapshotID: info.id)

            let b = SnapshotStorage(store: store, directory: hostB, partBytes: 16 << 10)
            switch kind {
            case .postgres:
                #expect(parts == (before.fileBytes + (16 << 10) - 1) / (16 << 10) && parts > 1)
                // A host without the file materialises it from the store: the same bytes, and no temporary left.
                // The record it is given may be the one read before the seal: the chunks are gone, the file is found.
                let file = try await b.open(info)
                #expect(file.checksum == before.checksum && file.fileBytes == before.fileBytes && file.verify())
                #expect(try FileManager.default.contentsOfDirectory(atPath: hostB).count == 1)
                for key in ["u0", "u1234", "u2999"] { #expect(file.outputs(for: key) == before.outputs(for: key)) }
                // Another process sealing again keeps the first file and leaves its own parts behind.
                #expect(try await b.seal(info) == sealed)
                #expect(try await store.snapshotFilePartCount(snapshotID: info.id) == parts)
            case .sqlite:
                #expect(parts == 0)
                await #expect(throws: BatchStoreError.filesNotHeld) {
                    try await store.putSnapshotFilePart(snapshotID: info.id, uploader: "x", index: 0, bytes: [1])
                }
                // The file beside the database is the snapshot: another folder cannot have it, and says why.
                let error = await #expect(throws: SnapshotStorage.Missing.self) { _ = try await b.open(sealed) }
                #expect(error?.description.contains("is sealed") == true)
                #expect(try await b.seal(sealed) == sealed)
            }
            // The first host's file is found again, checked against the record.
            let again = try await a.open(sealed)
            #expect(again.outputs(for: "u42") == ["score": .number(42.1), "tag": .string("t42")])
        }
    }

    @Test("chunks read a page at a time come in the order of the whole read", arguments: StoreKind.allCases)
    func chunkPages(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            let info = try await Self.publish(store, version: 1, keys: 10)
            // A backfill's snapshot: base rows (chunk -1) and ranges' chunks written out of order.
            let t = 5_000.0
            let run = try await store.startRun(
                BatchRun(
                    id: "run_p", feature: "churn", trigger: .backfill, snapshotID: 0, startedAt: t, heartbeatAt: t,
                    owner: "test:1", keys: ["u1"]),
                modelVersion: "m:1", inputTime: t, copyFrom: info.id, liveAfter: t - 60, isGone: { _ in false })
            _ = try await store.splitRun(runID: run.id, rowsTotal: 30, rangeRows: 10, at: t)
            for _ in 0..<3 {
                let lease = try #require(
                    try await store.leaseRange(
                        features: ["churn"], owner: "test:1", now: t, leaseSeconds: 60, isGone: { _ in false }))
                for part in [1, 0] {  // the later part of the range first
                    let start = lease.range.rowStart + part * 5
                    try await store.appendRangeChunk(
                        runID: run.id, index: lease.range.index, owner: "test:1",
                        chunk: SnapshotChunk(
                            index: start, keys: (start..<(start + 5)).map { "k\($0)" },
                            outputs: (start..<(start + 5)).map { Array(#"{"v":\#($0)}"#.utf8) }),
                        failures: [],
                        progress: RangeProgress(
                            rangeRowsDone: 0, rowsRead: 5, rowsWritten: 5, rowsFailed: 0, busySeconds: 0, at: t))
                }
            }
            let whole = try await store.chunks(snapshotID: run.snapshotID)
            #expect(whole.count == 7 && whole.first?.index == -1)
            #expect(whole.map(\.index) == whole.map(\.index).sorted())
            for limit in [1, 2, 3, 100] {
                var paged: [SnapshotChunk] = []
                var cursor: ChunkCursor?
                while true {
                    let (page, next) = try await store.chunks(snapshotID: run.snapshotID, after: cursor, limit: limit)
                    #expect(page.count <= limit)
                    if page.isEmpty {
                        #expect(next == nil)
                        break
                    }
                    paged += page
                    cursor = next
                }
                #expect(paged == whole, "limit \(limit)")
            }
        }
    }

    @Test("a damaged copy in the folder is not served: the store's file replaces it", arguments: [StoreKind.postgres])
    func damagedCopyReplaced(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            let host = Self.folder()
            defer { try? FileManager.default.removeItem(atPath: host) }
            let storage = SnapshotStorage(store: store, directory: host)
            let sealed = try await storage.seal(try await Self.publish(store, version: 1, keys: 500))
            let path = SnapshotFiles.path(for: sealed, in: host)
            let whole = try Data(contentsOf: URL(fileURLWithPath: path))
            try whole.prefix(whole.count - 8).write(to: URL(fileURLWithPath: path))  // torn
            let file = try await storage.open(sealed)
            #expect(file.fileBytes == whole.count && file.verify())
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == whole)
        }
    }

    @Test(
        "only a published or retired snapshot is sealed; retention drops a sealed one with its parts",
        arguments: StoreKind.allCases)
    func sealStatesAndRetention(kind: StoreKind) async throws {
        try await StoreFixture.with(kind) { fixture in
            let store = fixture.store
            let host = Self.folder()
            defer { try? FileManager.default.removeItem(atPath: host) }
            let storage = SnapshotStorage(store: store, directory: host)
            let v1 = try await storage.seal(try await Self.publish(store, version: 1, keys: 100, retention: 1))
            let v2 = try await storage.seal(try await Self.publish(store, version: 2, keys: 100, retention: 1))
            #expect(v2.file != nil)
            // Retention 1: v1 is gone with its parts.
            #expect(try await store.snapshot(id: v1.id) == nil)
            #expect(try await store.snapshotFilePartCount(snapshotID: v1.id) == 0)
            // A building snapshot is not sealed.
            let t = 9_000.0
            let building = try await store.startRun(
                BatchRun(
                    id: "run_b", feature: "churn", trigger: .manual, snapshotID: 0, startedAt: t, heartbeatAt: t,
                    owner: "test:1"),
                modelVersion: "m:1", inputTime: t, copyFrom: v2.id, liveAfter: t - 60, isGone: { _ in false })
            await #expect(throws: BatchStoreError.snapshotState(id: building.snapshotID, state: "building")) {
                _ = try await store.sealSnapshot(
                    id: building.snapshotID, file: SnapshotInfo.SealedFile(checksum: 1, size: 1), uploader: "x")
            }
            // A backfill over the sealed v2 starts empty (the store cannot copy a file) and records its base.
            #expect(try await store.snapshot(id: building.snapshotID)?.baseID == v2.id)
            #expect(try await store.chunks(snapshotID: building.snapshotID).isEmpty)
            // Base rows are replaced as a whole by the first part of a copy.
            for first in [true, false, true] {
                try await store.replaceBaseRows(
                    snapshotID: building.snapshotID,
                    chunk: SnapshotChunk(index: -1, keys: ["a"], outputs: [Array(#"{"score":1}"#.utf8)]), first: first)
            }
            #expect(try await store.chunks(snapshotID: building.snapshotID).flatMap(\.keys) == ["a"])
            await #expect(throws: BatchStoreError.snapshotState(id: v2.id, state: "published")) {
                try await store.replaceBaseRows(
                    snapshotID: v2.id, chunk: SnapshotChunk(index: -1, keys: [], outputs: []), first: true)
            }
        }
    }
}

struct DoubleFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
