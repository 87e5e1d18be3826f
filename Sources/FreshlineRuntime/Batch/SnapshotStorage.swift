internal import Foundation
public import FreshlineCore
public import FreshlineSnapshot
internal import NIOPosix
internal import Synchronization

/// A snapshot's file on this host, and the store's record of it (docs/snapshots.md, "Sealing").
///
/// A run writes its rows to the store in chunks, with its range checkpoints, and publishes in one transaction. Then
/// the publishing worker seals the snapshot: it writes the file, uploads it (PostgreSQL keeps the file in parts;
/// SQLite keeps only its checksum and size, the file in the folder beside the database being the snapshot) and records
/// it, which drops the chunks. A server opens the snapshot's file from its folder, or materialises it from the store
/// (PostgreSQL), or, while the snapshot is not yet sealed, writes it from the chunks.
public struct SnapshotStorage: Sendable {
    /// The store the snapshots are recorded in.
    public let store: any BatchStore
    /// This host's snapshot folder.
    public let directory: String

    /// A sealed file is uploaded in parts of this size (8 MiB by default): one statement each, well under
    /// PostgreSQL's 1 GB limit of a value, and a memory use that does not grow with the file.
    let partBytes: Int

    public init(store: any BatchStore, directory: String, partBytes: Int = 8 << 20) {
        self.store = store
        self.directory = directory
        self.partBytes = max(4096, partBytes)
    }

    /// Why a snapshot's file cannot be had.
    public struct Missing: Error, CustomStringConvertible {
        public var description: String
    }

    /// The snapshot's file, mapped, from the first place that has it:
    /// - the folder, when a file there has the snapshot's id (and, once sealed, the recorded checksum and size);
    /// - for a snapshot not yet sealed, its chunks: written to the folder and checked whole;
    /// - for a sealed one, the store's copy (PostgreSQL), downloaded part by part, checked whole, then renamed into
    ///   place. With SQLite a sealed snapshot whose file is gone cannot be had again: the file was the snapshot.
    public func open(_ info: SnapshotInfo) async throws -> SnapshotFile {
        let path = SnapshotFiles.path(for: info, in: directory)
        if let file = try? SnapshotFile(path: path), Self.matches(file, info) { return file }
        // One writer per file in this process: a server's refresh and its own worker's seal both open a snapshot
        // the moment it is published. The first caller writes it; the others wait for its outcome.
        while true {
            let writer = Self.inFlight.withLock { waiting in
                guard waiting[path] == nil else { return false }
                waiting[path] = []
                return true
            }
            if writer {
                let outcome: Result<SnapshotFile, any Error>
                do { outcome = .success(try await fetch(info, path: path)) } catch { outcome = .failure(error) }
                let waiters = Self.inFlight.withLock { $0.removeValue(forKey: path) } ?? []
                for waiter in waiters { waiter.resume(with: outcome) }
                return try outcome.get()
            }
            do {
                return try await withCheckedThrowingContinuation { waiter in
                    let queued = Self.inFlight.withLock { waiting in
                        guard waiting[path] != nil else { return false }
                        waiting[path]?.append(waiter)
                        return true
                    }
                    // The writer finished between the two looks: try again (the file is most likely there now).
                    if !queued { waiter.resume(throwing: WriterGone()) }
                }
            } catch is WriterGone {
                continue
            } catch is CancellationError where !Task.isCancelled {
                // The writer was cancelled, this caller is not: it writes the file itself.
                continue
            }
        }
    }

    /// Callers waiting for the file being written at a path in this process, by path (an entry exists while one is
    /// written).
    private static let inFlight = Mutex<[String: [CheckedContinuation<SnapshotFile, any Error>]]>([:])

    private struct WriterGone: Error {}

    /// `open` once the folder has no usable file: from the chunks, or from the store's copy.
    private func fetch(_ info: SnapshotInfo, path: String) async throws -> SnapshotFile {
        if let file = try? SnapshotFile(path: path), Self.matches(file, info) { return file }
        var current = info
        if current.file == nil {
            if let file = try await write(info, path: path) { return file }
            // Sealed since the caller read the record: the seal dropped the chunks.
            guard let fresh = try await store.snapshot(id: info.id), fresh.file != nil else {
                throw Missing(description: "snapshot \(info.id) of \(info.feature) has neither chunks nor a file")
            }
            current = fresh
            if let file = try? SnapshotFile(path: path), Self.matches(file, current) { return file }
        }
        guard store.holdsSnapshotFiles else {
            throw Missing(
                description:
                    "\(path) is missing: snapshot v\(info.version) of \(info.feature) is sealed, and with SQLite its file in the snapshot folder is the snapshot; run the feature again"
            )
        }
        return try await materialise(current, to: path)
    }

    /// Seals a published (or retired) snapshot: its file opened as `open` does, uploaded to a store that holds files,
    /// then recorded, which drops its chunks. Returns the snapshot as the store has it now. Idempotent: a snapshot
    /// already sealed stays as it is, and two processes sealing at once leave one file.
    @discardableResult
    public func seal(_ info: SnapshotInfo) async throws -> SnapshotInfo {
        if info.file != nil { return info }
        let file = try await open(info)
        let uploader = "\(RunOwner.current)-\(RandomID.make("u"))"
        if store.holdsSnapshotFiles {
            let parts = (file.fileBytes + partBytes - 1) / partBytes
            for index in 0..<parts {
                let start = index * partBytes
                try await store.putSnapshotFilePart(
                    snapshotID: info.id, uploader: uploader, index: index,
                    bytes: file.copyBytes(start..<(start + partBytes)))
            }
        }
        return try await store.sealSnapshot(
            id: info.id, file: SnapshotInfo.SealedFile(checksum: file.checksum, size: file.fileBytes),
            uploader: uploader)
    }

    /// Chunks read from the store at once while a file is written from them.
    static let pageChunks = 16

    /// Writes a snapshot's file from its chunks: a page of chunks at a time through `SnapshotStreamWriter` (memory:
    /// the index and one page), or, for rows it cannot take, every chunk at once through the general writer.
    /// `nil` when the chunks are gone (the snapshot was sealed meanwhile); a file with fewer keys than the
    /// snapshot's (chunks deleted while they were read) is never returned.
    private func write(_ info: SnapshotInfo, path: String) async throws -> SnapshotFile? {
        var doubles: Set<String> = []
        attempts: while true {
            let writer = try SnapshotStreamWriter(path: path, info: info, doubles: doubles)
            var cursor: ChunkCursor?
            var rows = 0
            while true {
                let (chunks, next) = try await store.chunks(snapshotID: info.id, after: cursor, limit: Self.pageChunks)
                if chunks.isEmpty { break }
                rows += chunks.reduce(0) { $0 + $1.keys.count }
                let taken = try await Self.blocking {
                    for chunk in chunks where try !writer.add(chunk) { return false }
                    return true
                }
                if !taken {
                    if !writer.retryWithDoubles.isEmpty, writer.retryWithDoubles != doubles {
                        doubles = writer.retryWithDoubles  // an output is not float32 after all: again, as f64
                        continue attempts
                    }
                    return try await writeInMemory(info, path: path)
                }
                cursor = next
            }
            if rows == 0 && info.keyCount > 0 { return nil }
            return try await Self.blocking {
                try writer.finish()
                return try Self.complete(try Self.checked(path, info), info)
            }
        }
    }

    /// The general writer: every chunk in memory at once (rows with strings, maps, nested values).
    private func writeInMemory(_ info: SnapshotInfo, path: String) async throws -> SnapshotFile? {
        let chunks = try await store.chunks(snapshotID: info.id)
        if chunks.isEmpty && info.keyCount > 0 { return nil }
        return try await Self.blocking {
            try SnapshotFileWriter.write(to: path, info: info, chunks: chunks, streaming: false)
            return try Self.complete(try Self.checked(path, info), info)
        }
    }

    /// `file`, when it has every key of the snapshot (a seal dropping the chunks while they were read leaves fewer).
    private static func complete(_ file: SnapshotFile, _ info: SnapshotInfo) throws -> SnapshotFile {
        guard file.metadata.keyCount >= info.keyCount else {
            unlink(file.path)
            throw Missing(
                description:
                    "snapshot v\(info.version) of \(info.feature): its chunks changed while they were read (\(file.metadata.keyCount) of \(info.keyCount) keys); read it again"
            )
        }
        return file
    }

    /// Writes the store's copy of a sealed snapshot's file under a temporary name, checks it whole, then renames it
    /// into place: a process killed meanwhile leaves no torn file under the snapshot's name.
    private func materialise(_ info: SnapshotInfo, to path: String) async throws -> SnapshotFile {
        let parts = try await store.snapshotFilePartCount(snapshotID: info.id)
        let temporary = "\(path).tmp-\(getpid())"
        try await Self.blocking {
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
                throw Missing(description: "\(temporary): cannot create it")
            }
        }
        do {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
            defer { try? handle.close() }
            for index in 0..<parts {
                let bytes = try await store.snapshotFilePart(snapshotID: info.id, index: index)
                try await Self.blocking { try handle.write(contentsOf: bytes) }
            }
            try await Self.blocking { try handle.synchronize() }
            return try await Self.blocking {
                _ = try Self.checked(temporary, info)
                guard rename(temporary, path) == 0 else {
                    throw Missing(description: "\(path): cannot rename the downloaded file into place")
                }
                return try SnapshotFile(path: path)
            }
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }

    /// Whether `file` is the snapshot `info` names (and, once sealed, the file the store recorded).
    static func matches(_ file: SnapshotFile, _ info: SnapshotInfo) -> Bool {
        guard file.metadata.snapshotID == info.id else { return false }
        guard let sealed = info.file else { return true }
        return sealed.checksum == file.checksum && sealed.size == file.fileBytes
    }

    /// Opens the file at `path` and reads it whole against its checksum (and the store's record, once sealed).
    private static func checked(_ path: String, _ info: SnapshotInfo) throws -> SnapshotFile {
        let file = try SnapshotFile(path: path)
        guard matches(file, info), file.verify() else {
            throw SnapshotFile.OpenError(description: "\(path): its checksum does not match the snapshot's")
        }
        return file
    }

    /// Blocking file work: on the shared blocking pool, not the cooperative one.
    private static func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(work)
    }
}
