import Foundation
import FreshlineCore
import FreshlineEngine
import FreshlineJSON
import FreshlineTestSupport
import Testing

@testable import FreshlineRuntime
@testable import FreshlineStore

@Suite("Entity sources")
struct EntitySourceTests {
    // MARK: Helpers

    /// A fresh temporary folder with a (not written) manifest path inside, for resolving relative sources.
    struct Folder {
        let url: URL
        var manifestPath: String { url.appendingPathComponent("freshline.yaml").path }

        init() throws {
            url = FileManager.default.temporaryDirectory.appendingPathComponent(
                "freshline-sources-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }

        /// Writes `text` as UTF-8 to `name` in the folder and returns the file's path.
        @discardableResult
        func write(_ name: String, _ text: String) throws -> String {
            let path = url.appendingPathComponent(name).path
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }

        /// Creates an SQLite database `name` in the folder by running `sql` with the sqlite3 command-line tool.
        @discardableResult
        func database(_ name: String, _ sql: String) throws -> String {
            let tool = "/usr/bin/sqlite3"
            try #require(
                FileManager.default.isExecutableFile(atPath: tool),
                "the sqlite3 command-line tool (\(tool)) is needed to create the SQL source's test database")
            let path = url.appendingPathComponent(name).path
            let process = Process()
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = ["-bail", path, sql]
            try process.run()
            process.waitUntilExit()
            try #require(process.terminationStatus == 0, "sqlite3 could not create \(path)")
            return path
        }
    }

    /// Reads every remaining record, `maxRows` at a time.
    static func readAll(_ reader: any EntityReader, maxRows: Int = 100) throws -> [EntityRecord] {
        var records: [EntityRecord] = []
        while true {
            let chunk = try reader.next(maxRows: maxRows)
            if chunk.isEmpty { return records }
            records += chunk
        }
    }

    /// The record's fields, or `nil` when it failed.
    static func fields(_ record: EntityRecord) -> [String: JSONValue]? {
        try? record.fields.get()
    }

    /// The record's failure message, or `nil` when it was read.
    static func failure(_ record: EntityRecord) -> String? {
        if case .failure(let error) = record.fields { error.message } else { nil }
    }

    /// The `id` column of each record that was read.
    static func ids(_ records: [EntityRecord]) -> [String] {
        records.compactMap {
            if case .string(let id) = fields($0)?["id"] { id } else { nil }
        }
    }

    // MARK: CSV

    @Test("CSV: quoted fields with commas, doubled quotes and newlines; locations are the rows' first lines")
    func csvQuoting() throws {
        let folder = try Folder()
        let path = try folder.write(
            "people.csv",
            #"""
            id,name,note
            1,"Smith, John","said ""hi"""
            2,"two
            lines",plain
            3,"",""""
            4,Zoë,naïve ,x

            """#)
        let reader = try CSVEntityReader(path: path)
        #expect(reader.header == ["id", "name", "note"])
        let records = try reader.next(maxRows: 10)
        #expect(records.count == 4)
        #expect(records.map(\.ordinal) == [1, 2, 3, 4])
        #expect(records.map(\.location) == ["people.csv:2", "people.csv:3", "people.csv:5", "people.csv:6"])
        #expect(
            Self.fields(records[0]) == [
                "id": .string("1"), "name": .string("Smith, John"), "note": .string("said \"hi\""),
            ])
        #expect(Self.fields(records[1])?["name"] == .string("two\nlines"))
        #expect(Self.fields(records[1])?["note"] == .string("plain"))
        #expect(Self.fields(records[2])?["name"] == .string(""))
        #expect(Self.fields(records[2])?["note"] == .string("\""))
        // An unquoted row with four cells: the wrong field count, not a parse error.
        #expect(Self.failure(records[3]) == "has 4 fields, the header has 3")
        #expect(try reader.next(maxRows: 10).isEmpty)
    }

    @Test("CSV: text after a closing quote is kept, not one byte dropped (lenient like Python's csv module)")
    func csvTextAfterClosingQuote() throws {
        let folder = try Folder()
        let path = try folder.write("lenient.csv", "id,a,b\n1,\"ab\"cd,\"x\"yz\n")
        let records = try Self.readAll(try CSVEntityReader(path: path))
        #expect(records.count == 1)
        let fields = try #require(Self.fields(records[0]))
        #expect(fields["a"] == .string("abcd"))
        #expect(fields["b"] == .string("xyz"))
    }

    @Test("CSV: CRLF line ends, a UTF-8 byte-order mark and blank lines")
    func csvLineEndsBOMAndBlankLines() throws {
        let folder = try Folder()
        let path = try folder.write(
            "crlf.csv", "\u{FEFF}id,value\r\n1,a\r\n\r\n2,\"b\r\nc\"\r\n\r\n\r\n3,d")
        let reader = try CSVEntityReader(path: path)
        #expect(reader.header == ["id", "value"])
        let records = try Self.readAll(reader)
        #expect(Self.ids(records) == ["1", "2", "3"])
        #expect(records.map(\.ordinal) == [1, 2, 3])
        #expect(records.map(\.location) == ["crlf.csv:2", "crlf.csv:4", "crlf.csv:8"])
        #expect(Self.fields(records[0])?["value"] == .string("a"))
        // Line ends inside quotes are kept as written.
        #expect(Self.fields(records[1])?["value"] == .string("b\r\nc"))
        // The last row has no line end.
        #expect(Self.fields(records[2])?["value"] == .string("d"))
        #expect(try EntitySources.count(.csv(path: path), manifestPath: folder.manifestPath) == 3)

        // Old Mac line ends (CR only) also end rows.
        let cr = try folder.write("cr.csv", "id,value\r1,a\r2,b\r")
        let crRecords = try Self.readAll(try CSVEntityReader(path: cr))
        #expect(Self.ids(crRecords) == ["1", "2"])
        #expect(crRecords.map(\.location) == ["cr.csv:2", "cr.csv:3"])
    }

    @Test("CSV: a row with the wrong field count is a per-row failure at its file:line")
    func csvWrongFieldCount() throws {
        let folder = try Folder()
        let path = try folder.write("accounts.csv", "id,a,b\n1,x,y\n2,x\n3,x,y,z\n\n4,x,y\n")
        let records = try Self.readAll(try CSVEntityReader(path: path))
        #expect(records.map(\.ordinal) == [1, 2, 3, 4])
        #expect(Self.ids(records) == ["1", "4"])
        #expect(records[1].location == "accounts.csv:3")
        #expect(Self.failure(records[1]) == "has 2 fields, the header has 3")
        #expect(records[2].location == "accounts.csv:4")
        #expect(Self.failure(records[2]) == "has 4 fields, the header has 3")
        #expect(records[3].location == "accounts.csv:6")
        // Failed rows count as rows (they are part of the checkpoint).
        #expect(try EntitySources.count(.csv(path: path), manifestPath: folder.manifestPath) == 4)
    }

    @Test("CSV: an unclosed quote, an empty file and a repeated header column fail the whole source")
    func csvSourceErrors() throws {
        let folder = try Folder()
        let unclosed = try folder.write("unclosed.csv", "id,a\n1,x\n2,\"never closed\n3,y\n")
        let reader = try CSVEntityReader(path: unclosed)
        let error = #expect(throws: EntitySourceError.self) { try Self.readAll(reader) }
        #expect(error?.message == "unclosed.csv:3: a quoted field is not closed")
        #expect(throws: EntitySourceError.self) {
            try EntitySources.count(.csv(path: unclosed), manifestPath: folder.manifestPath)
        }
        let unclosedHeader = try folder.write("header.csv", "id,\"a\n1,2\n")
        #expect(throws: EntitySourceError.self) { try CSVEntityReader(path: unclosedHeader) }

        let empty = try folder.write("empty.csv", "")
        #expect(throws: EntitySourceError.self) { try CSVEntityReader(path: empty) }
        let repeated = try folder.write("repeated.csv", "id,a,id\n1,2,3\n")
        #expect(throws: EntitySourceError.self) { try CSVEntityReader(path: repeated) }
        let missing = folder.url.appendingPathComponent("missing.csv").path
        #expect(throws: EntitySourceError.self) {
            try EntitySources.open(.csv(path: missing), manifestPath: folder.manifestPath, skipping: 0)
        }
    }

    @Test("CSV: next(maxRows:) reads in chunks with running ordinals")
    func csvChunking() throws {
        let folder = try Folder()
        let path = try folder.write("five.csv", "id\n" + (1...5).map(String.init).joined(separator: "\n") + "\n")
        let reader = try CSVEntityReader(path: path)
        let first = try reader.next(maxRows: 2)
        let second = try reader.next(maxRows: 2)
        let third = try reader.next(maxRows: 2)
        #expect(first.map(\.ordinal) == [1, 2])
        #expect(second.map(\.ordinal) == [3, 4])
        #expect(third.map(\.ordinal) == [5])
        #expect(Self.ids(first + second + third) == ["1", "2", "3", "4", "5"])
        #expect(third.first?.location == "five.csv:6")
        #expect(try reader.next(maxRows: 2).isEmpty)
        #expect(try reader.next(maxRows: 2).isEmpty)
    }

    @Test("CSV: open(skipping:) resumes at the next row; a relative path resolves against the manifest")
    func csvSkipping() throws {
        let folder = try Folder()
        try folder.write("rows.csv", "id,v\n1,a\n2,b\n\n3,c\n4,d\n5,e\n")
        let source = BatchSpec.Source.csv(path: "rows.csv")
        #expect(
            EntitySources.resolve("rows.csv", manifestPath: folder.manifestPath)
                == folder.url.appendingPathComponent("rows.csv").path)
        #expect(EntitySources.resolve("/abs/rows.csv", manifestPath: folder.manifestPath) == "/abs/rows.csv")
        #expect(try EntitySources.count(source, manifestPath: folder.manifestPath) == 5)

        let resumed = try Self.readAll(EntitySources.open(source, manifestPath: folder.manifestPath, skipping: 3))
        #expect(Self.ids(resumed) == ["4", "5"])
        #expect(resumed.map(\.ordinal) == [4, 5])
        #expect(resumed.map(\.location) == ["rows.csv:6", "rows.csv:7"])

        let all = try Self.readAll(EntitySources.open(source, manifestPath: folder.manifestPath, skipping: 0))
        #expect(all.map(\.ordinal) == [1, 2, 3, 4, 5])
        let past = try EntitySources.open(source, manifestPath: folder.manifestPath, skipping: 9)
        #expect(try past.next(maxRows: 10).isEmpty)
    }

    @Test(
        "CSV: skipping and the columnar chunks agree with the record reader at every start row (quoted line breaks, CRLF, a lone CR, blank lines, a short row)"
    )
    func csvFastPathsAgree() throws {
        let folder = try Folder()
        let texts = [
            "id,a,b\r\n1,0.5,x\r\n\r\n2,\"multi\nline\",y\n3,\"q \"\"z\"\"\",7\n\n4,1e3,-2\r5,6,7\n6,short\n7,8,9",
            // No quote at all: the counting and skipping fast paths.
            "id,a,b\r\n1,0.5,x\r\n\r\n2,3,y\n\n4,1e3,-2\r5,6,7\r\r\n6,short\n7,8,9\n",
        ]
        for (index, text) in texts.enumerated() {
            let path = try folder.write("mixed\(index).csv", text)
            try checkFastPaths(BatchSpec.Source.csv(path: path), folder: folder, rows: index == 0 ? 7 : 6)
        }
    }

    func checkFastPaths(_ source: BatchSpec.Source, folder: Folder, rows: Int) throws {
        let expected = try Self.readAll(EntitySources.open(source, manifestPath: folder.manifestPath, skipping: 0))
        #expect(expected.map(\.ordinal) == Array(1...rows))
        #expect(try EntitySources.count(source, manifestPath: folder.manifestPath) == rows)
        for start in 0...expected.count {
            // The record reader after skip(rows:) …
            let resumed = try Self.readAll(
                EntitySources.open(source, manifestPath: folder.manifestPath, skipping: start))
            #expect(resumed.map(\.ordinal) == expected.dropFirst(start).map(\.ordinal), "skipping \(start)")
            #expect(resumed.map(\.location) == expected.dropFirst(start).map(\.location), "skipping \(start)")
            // … and the columnar chunk's cells after skip(rows:), row by row.
            let reader = try #require(
                EntitySources.open(source, manifestPath: folder.manifestPath, skipping: start) as? CSVEntityReader)
            let chunk = try reader.nextRaw(maxRows: 100)
            #expect(chunk.ordinals == expected.dropFirst(start).map(\.ordinal), "skipping \(start)")
            var cells = CSVRawChunk.RowCells(columns: chunk.columns)
            for (row, record) in zip(0..<chunk.rows, expected.dropFirst(start)) {
                #expect(chunk.lines[row] == Int(record.location.split(separator: ":").last!)!)
                let count = chunk.data.withUnsafeBytes { chunk.cells(of: row, in: $0, into: &cells) }
                guard let fields = Self.fields(record) else {
                    #expect(count != chunk.columns, "row \(record.ordinal) fails in both readers")
                    continue
                }
                #expect(count == chunk.columns)
                let texts = (0..<chunk.columns).map {
                    CSVScanner.string(chunk.data, cells.starts[$0], cells.ends[$0], quoted: cells.quoted[$0])
                }
                #expect(texts == ["id", "a", "b"].map { if case .string(let s) = fields[$0] { s } else { "?" } })
            }
        }
    }

    @Test("CSV: a large file is counted in two halves; blank lines, CRLF and a lone CR count as the reader reads them")
    func countLargeFile() throws {
        let folder = try Folder()
        let rows = 300_000  // about 6 MB: over the 4 MiB from which the count is split in two
        var text = "id,a,b\n"
        text.reserveCapacity(rows * 22)
        for i in 0..<rows {
            switch i {
            case rows / 2: text += "k\(i),1,2\rextra,3,4\n"  // a lone CR near the middle: two records
            case rows / 2 + 1, rows / 3, rows - 1: text += "\n\r\n"  // blank lines count for nothing
            default: text += i % 7 == 0 ? "k\(i),\(i),0.5\r\n" : "k\(i),\(i),0.5\n"
            }
        }
        let path = try folder.write("large.csv", text)
        let expected = rows - 3 + 1
        #expect(try EntitySources.count(.csv(path: path), manifestPath: folder.manifestPath) == expected)
        let counted = Array(text.utf8).withUnsafeBytes { CSVEntityReader.countLinesWithoutQuotes($0) }
        #expect(counted == expected + 1, "the header line is one more record")
        // A quote anywhere (here in the second half) leaves counting to the quote-aware scan.
        let quoted = try folder.write("quoted.csv", text + "\"q,1\",2,3\n")
        #expect(
            Array(text.utf8 + Array("\"q,1\",2,3\n".utf8)).withUnsafeBytes {
                CSVEntityReader.countLinesWithoutQuotes($0)
            } == nil)
        #expect(try EntitySources.count(.csv(path: quoted), manifestPath: folder.manifestPath) == expected + 1)
    }

    @Test("CSV: counting records line by line agrees with reading byte by byte")
    func countPiecesAgrees() {
        /// The record scanner's rule, byte by byte: a non-empty piece between LFs and CRs is a record.
        func reference(_ bytes: [UInt8]) -> Int? {
            if bytes.contains(UInt8(ascii: "\"")) { return nil }
            var count = 0
            var content = false
            for b in bytes {
                if b == UInt8(ascii: "\n") || b == UInt8(ascii: "\r") {
                    if content { count += 1 }
                    content = false
                } else {
                    content = true
                }
            }
            return count + (content ? 1 : 0)
        }
        var generator = SystemRandomNumberGenerator()
        // Breaks, runs of breaks and bytes next to them (0x0A ± 1, 0x0D ± 1, and 0x8A/0x8D, equal in the low bits).
        let alphabet: [UInt8] = Array("\n\r\n\n\r,a1".utf8) + [0x09, 0x0B, 0x0C, 0x0E, 0x8A, 0x8D, 0xFF, 0x00]
        for trial in 0..<3000 {
            let length = Int.random(in: 0...70, using: &generator)
            var bytes = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            if trial % 10 == 0 && length > 0 {
                bytes[Int.random(in: 0..<length, using: &generator)] = UInt8(ascii: "\"")
            }
            let counted = bytes.withUnsafeBytes { CSVEntityReader.countPiecesWithoutQuotes($0) }
            #expect(counted == reference(bytes), "\(bytes)")
        }
    }

    @Test("CSV numbers: the fast parser gives the values Swift's own parsing gives, and falls back for the rest")
    func numberCells() {
        func parse(_ text: String) -> NumberCell { Array(text.utf8).withUnsafeBytes { NumberCell.parse($0) } }
        for text in [
            "1.", ".5", "-0.25", "+5.5", "1e3", "-2.5E-3", "0.1", "3.14159", "-1.23456789", "123456789.123456789",
            "0.000000000000000000001", "12345678901234567.5", "9007199254740993.0", "1e22", "1e-22", "4.9e-324",
        ] {
            guard case .number(let value) = parse(text) else {
                Issue.record("\(text) is not read as a number")
                continue
            }
            #expect(value == Double(text)!, "\(text)")
        }
        for (text, integer) in [("42", Int64(42)), ("-7", -7), ("+5", 5), (" 8 ", 8), ("9223372036854775807", .max)] {
            guard case .integer(let value) = parse(text) else {
                Issue.record("\(text) is not read as an integer")
                continue
            }
            #expect(value == integer, "\(text)")
        }
        for text in ["", "  ", "nan", "NaN"] {
            guard case .missing = parse(text) else {
                Issue.record("'\(text)' is not missing")
                continue
            }
        }
        for text in ["-", "1.2.3", "abc", "1e", "1e+", "--1", "inf"] {
            guard case .invalid = parse(text) else {
                Issue.record("'\(text)' is not invalid")
                continue
            }
        }
    }

    // MARK: JSON Lines

    @Test("JSON Lines: objects are rows; non-object and invalid lines are per-row failures; blank lines skipped")
    func jsonLines() throws {
        let folder = try Folder()
        let path = try folder.write(
            "events.jsonl",
            """
            {"id": "a", "x": 1, "v": [1.5, 2]}

            [1, 2]
            {"id": "b",
            "just a string"
               \t
            {"id": 7, "name": "Zoë", "none": null}\r
            {"id": "c"} trailing
            """)
        let records = try Self.readAll(try JSONLinesEntityReader(path: path), maxRows: 3)
        #expect(records.map(\.ordinal) == [1, 2, 3, 4, 5, 6])
        #expect(
            records.map(\.location) == [
                "events.jsonl:1", "events.jsonl:3", "events.jsonl:4", "events.jsonl:5", "events.jsonl:7",
                "events.jsonl:8",
            ])
        #expect(
            Self.fields(records[0])
                == ["id": .string("a"), "x": .integer(1), "v": .array([.number(1.5), .integer(2)])])
        #expect(Self.failure(records[1]) == "is not a JSON object")
        #expect(Self.failure(records[2])?.hasPrefix("is not valid JSON") == true)
        #expect(Self.failure(records[3]) == "is not a JSON object")
        // A CRLF line end is whitespace after the object.
        #expect(Self.fields(records[4]) == ["id": .integer(7), "name": .string("Zoë"), "none": .null])
        #expect(Self.failure(records[5])?.hasPrefix("is not valid JSON") == true)
        #expect(try EntitySources.count(.jsonLines(path: path), manifestPath: folder.manifestPath) == 6)
    }

    @Test("JSON Lines: chunking and open(skipping:) resume at the next row")
    func jsonLinesSkipping() throws {
        let folder = try Folder()
        let lines = (1...5).map { "{\"id\": \"\($0)\"}" }
        try folder.write(
            "ids.jsonl", lines[0..<2].joined(separator: "\n") + "\n\n" + lines[2...].joined(separator: "\n") + "\n")
        let source = BatchSpec.Source.jsonLines(path: "ids.jsonl")
        #expect(try EntitySources.count(source, manifestPath: folder.manifestPath) == 5)

        let reader = try EntitySources.open(source, manifestPath: folder.manifestPath, skipping: 0)
        #expect(try reader.next(maxRows: 2).map(\.ordinal) == [1, 2])
        #expect(try reader.next(maxRows: 2).map(\.location) == ["ids.jsonl:4", "ids.jsonl:5"])
        #expect(try reader.next(maxRows: 2).map(\.ordinal) == [5])
        #expect(try reader.next(maxRows: 2).isEmpty)

        let resumed = try Self.readAll(EntitySources.open(source, manifestPath: folder.manifestPath, skipping: 2))
        #expect(Self.ids(resumed) == ["3", "4", "5"])
        #expect(resumed.map(\.ordinal) == [3, 4, 5])
        #expect(resumed.first?.location == "ids.jsonl:4")

        let empty = try folder.write("empty.jsonl", "")
        #expect(try Self.readAll(JSONLinesEntityReader(path: empty)).isEmpty)
        #expect(try EntitySources.count(.jsonLines(path: empty), manifestPath: folder.manifestPath) == 0)
    }

    // MARK: SQL

    static let accountsSQL = """
        CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT, score REAL, tags TEXT, note TEXT);
        INSERT INTO accounts VALUES
            (1, 'ada', 1.5, '[1, 2]', NULL),
            (2, 'bob', 2, '[3, 4]', 'x'),
            (3, 'čeněk', -1, '[]', 'y'),
            (4, 'dan', 0.25, '[5]', NULL),
            (5, 'eve', 9.25, '[6]', 'z');
        """

    @Test("SQL: rows in pages with ordinals and locations; SQLite types map to JSON values")
    func sqlSource() throws {
        let folder = try Folder()
        try folder.database("accounts.sqlite", Self.accountsSQL)
        let source = BatchSpec.Source.sql(
            database: "accounts.sqlite", query: "SELECT id, name, score, note FROM accounts ORDER BY id DESC;\n")
        #expect(try EntitySources.count(source, manifestPath: folder.manifestPath) == 5)

        let reader = try EntitySources.open(source, manifestPath: folder.manifestPath, skipping: 0)
        let first = try reader.next(maxRows: 2)
        #expect(first.map(\.ordinal) == [1, 2])
        #expect(first.map(\.location) == ["accounts.sqlite query row 1", "accounts.sqlite query row 2"])
        #expect(
            Self.fields(first[0])
                == ["id": .integer(5), "name": .string("eve"), "score": .number(9.25), "note": .string("z")])
        #expect(Self.fields(first[1])?["note"] == .null)
        let rest = try Self.readAll(reader, maxRows: 2)
        #expect(rest.map(\.ordinal) == [3, 4, 5])
        #expect(Self.fields(rest[0])?["name"] == .string("čeněk"))
        // REAL affinity stores the integer literal as a real.
        #expect(Self.fields(rest[0])?["score"] == .number(-1))
        #expect(rest.last?.location == "accounts.sqlite query row 5")
        #expect(try reader.next(maxRows: 2).isEmpty)

        let filtered = BatchSpec.Source.sql(
            database: "accounts.sqlite", query: "SELECT * FROM accounts WHERE score > 1 ORDER BY id")
        #expect(try EntitySources.count(filtered, manifestPath: folder.manifestPath) == 3)
    }

    @Test("SQL: the count leaves out only a final ORDER BY of the whole query, and counts what the query returns")
    func sqlCountWithoutOrder() throws {
        let strip = SQLiteQuerySource.withoutFinalOrderBy
        #expect(strip("SELECT * FROM users ORDER BY user_id") == "SELECT * FROM users ")
        #expect(strip("select a from t order by lower(a) collate nocase desc nulls last") == "select a from t ")
        #expect(strip("SELECT a FROM t UNION SELECT a FROM u ORDER BY 1") == "SELECT a FROM t UNION SELECT a FROM u ")
        // Quotes (a doubled quote inside), quoted names, comments and parentheses before the final ORDER BY.
        #expect(strip("SELECT a FROM t WHERE b = 'it''s' ORDER BY a") == "SELECT a FROM t WHERE b = 'it''s' ")
        #expect(
            strip("SELECT \"order by\", [by] FROM t /* ORDER BY */ -- ORDER BY\nWHERE (a) ORDER BY a")
                == "SELECT \"order by\", [by] FROM t /* ORDER BY */ -- ORDER BY\nWHERE (a) ")
        // Kept whole: something after the terms, or no ORDER BY outside parentheses, quotes and comments — each
        // with the ORDER BY last, so only the tokenizing keeps it.
        for query in [
            "SELECT * FROM t ORDER BY a LIMIT 3", "SELECT * FROM t ORDER BY a OFFSET 2",
            "SELECT * FROM (SELECT * FROM t ORDER BY a)", "SELECT a FROM t WHERE b = 'it''s ORDER BY a'",
            "SELECT a FROM t WHERE b = \"ORDER BY a\"", "SELECT a FROM t -- ORDER BY a",
            "SELECT a FROM t /* ORDER BY a */", "SELECT a FROM t WINDOW w AS (ORDER BY a)",
            "SELECT a FROM t WHERE a IN (SELECT a FROM u ORDER BY a)",
        ] {
            #expect(strip(query) == query, "\(query)")
        }
        let folder = try Folder()
        try folder.database("accounts.sqlite", Self.accountsSQL)
        for (query, rows) in [
            ("SELECT * FROM accounts ORDER BY id DESC", 5), ("SELECT * FROM accounts ORDER BY id LIMIT 2", 2),
            ("SELECT id FROM accounts UNION ALL SELECT id FROM accounts ORDER BY 1", 10),
            ("SELECT id FROM accounts WHERE name <> 'ORDER BY' ORDER BY name", 5),
        ] {
            let source = BatchSpec.Source.sql(database: "accounts.sqlite", query: query)
            #expect(try EntitySources.count(source, manifestPath: folder.manifestPath) == rows, "\(query)")
        }
    }

    @Test("SQL: pages read ahead on their own thread hand out every row once, in order, across page boundaries")
    func sqlPagesAhead() throws {
        let folder = try Folder()
        let path = try folder.database(
            "many.sqlite",
            """
            CREATE TABLE t (id TEXT, v REAL);
            WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 23)
            INSERT INTO t SELECT 'k' || i, i * 0.5 FROM c;
            """)
        for (pageRows, maxRows, skipping) in [(3, 2, 0), (5, 5, 0), (4, 7, 6), (100, 4, 1)] {
            let reader = try SQLEntityReader(
                path: path, query: "SELECT * FROM t ORDER BY rowid", offset: skipping, pageRows: pageRows)
            var ordinals: [Int] = []
            var keys: [String] = []
            while true {
                let (table, first) = try reader.nextTable(maxRows: maxRows)
                if table.rows == 0 { break }
                #expect(table.rows <= maxRows)
                for row in 0..<table.rows {
                    ordinals.append(first + row)
                    if case .text(let key) = table[row, 0] { keys.append(key) }
                    #expect(table[row, 1] == .real(Double(first + row) * 0.5))
                }
            }
            let label = "pages of \(pageRows), chunks of \(maxRows), from row \(skipping)"
            #expect(ordinals == Array((skipping + 1)...23), "\(label)")
            #expect(keys == ((skipping + 1)...23).map { "k\($0)" }, "\(label)")
            #expect(try reader.nextTable(maxRows: maxRows).table.rows == 0, "the end, again: \(label)")
        }
        // A reader dropped part-way stops its page thread, which held the prefetcher: it goes within 5 s.
        weak var prefetcher: PagePrefetcher?
        do {
            let reader = try SQLEntityReader(path: path, query: "SELECT * FROM t", offset: 0, pageRows: 2)
            #expect(try reader.nextTable(maxRows: 1).table.rows == 1)
            prefetcher = reader.prefetcher
        }
        var waited = 0
        while prefetcher != nil && waited < 500 {
            Thread.sleep(forTimeInterval: 0.01)
            waited += 1
        }
        #expect(prefetcher == nil, "the page thread of a dropped reader is still running")
    }

    @Test("SQL: open(skipping:) resumes at the next row of the query")
    func sqlSkipping() throws {
        let folder = try Folder()
        try folder.database("accounts.sqlite", Self.accountsSQL)
        let source = BatchSpec.Source.sql(database: "accounts.sqlite", query: "SELECT * FROM accounts ORDER BY id")
        let resumed = try Self.readAll(
            EntitySources.open(source, manifestPath: folder.manifestPath, skipping: 3), maxRows: 1)
        #expect(resumed.map(\.ordinal) == [4, 5])
        #expect(resumed.map { Self.fields($0)?["id"] } == [.integer(4), .integer(5)])
        #expect(resumed.first?.location == "accounts.sqlite query row 4")
        #expect(Self.fields(resumed[0])?["tags"] == .string("[5]"))
        let past = try EntitySources.open(source, manifestPath: folder.manifestPath, skipping: 5)
        #expect(try past.next(maxRows: 10).isEmpty)
    }

    @Test("SQL: a missing database or a query that does not compile fails the source")
    func sqlSourceErrors() throws {
        let folder = try Folder()
        try folder.database("accounts.sqlite", Self.accountsSQL)
        let missing = BatchSpec.Source.sql(database: "nope.sqlite", query: "SELECT 1")
        #expect(throws: EntitySourceError.self) {
            try EntitySources.open(missing, manifestPath: folder.manifestPath, skipping: 0)
        }
        #expect(throws: EntitySourceError.self) { try EntitySources.count(missing, manifestPath: folder.manifestPath) }
        // Opening read-only never creates the file.
        #expect(!FileManager.default.fileExists(atPath: folder.url.appendingPathComponent("nope.sqlite").path))
        let broken = BatchSpec.Source.sql(database: "accounts.sqlite", query: "SELECT nothing FROM nowhere")
        #expect(throws: EntitySourceError.self) {
            try EntitySources.open(broken, manifestPath: folder.manifestPath, skipping: 0)
        }
        #expect(throws: EntitySourceError.self) { try EntitySources.count(broken, manifestPath: folder.manifestPath) }
    }
}

// MARK: - Row mapper

extension EntitySourceTests {
    static func model(_ name: String) throws -> Model {
        try Model(contentsOf: TestManifest.zoo.appendingPathComponent("\(name).onnx"))
    }

    static func batch(key: String = "id", columns: [String: BatchSpec.ColumnMapping] = [:]) -> BatchSpec {
        BatchSpec(
            source: .csv(path: "unused.csv"), keyColumn: key, columns: columns,
            location: SourceLocation(file: "freshline.yaml", line: 1, keyPath: "features.churn.batch"))
    }

    static let sixteen = (0..<16).map { "f\($0)" }

    @Suite("Entity row mapper")
    struct RowMapper {
        /// Maps `fields`, returning the key and inputs or the failure message.
        static func map(_ mapper: EntityRowMapper, _ fields: [String: JSONValue]) -> (
            key: String, inputs: [String: JSONValue]
        )? {
            try? mapper.map(fields).get()
        }

        static func failure(_ mapper: EntityRowMapper, _ fields: [String: JSONValue]) -> String? {
            if case .failure(let error) = mapper.map(fields) { error.message } else { nil }
        }

        static func row(id: JSONValue = .string("k1"), _ cells: [String]) -> [String: JSONValue] {
            var fields: [String: JSONValue] = ["id": id]
            for (index, cell) in cells.enumerated() { fields["f\(index)"] = .string(cell) }
            return fields
        }

        @Test(".columns builds a vector from text cells; numbers become integers or numbers")
        func columnsVector() throws {
            let mapper = EntityRowMapper(
                batch: EntitySourceTests.batch(columns: ["X": .columns(EntitySourceTests.sixteen)]),
                model: try EntitySourceTests.model("gbc_binary"))
            #expect(mapper.columns == ["id"] + EntitySourceTests.sixteen)
            let cells = ["1", "2.5", " 3 ", "-4", "1e3", "0.0"] + (6..<16).map { "\($0)" }
            let mapped = try #require(Self.map(mapper, Self.row(cells)))
            #expect(mapped.key == "k1")
            let expected: [JSONValue] =
                [.integer(1), .number(2.5), .integer(3), .integer(-4), .number(1000), .number(0)]
                + (6..<16).map { .integer(Int64($0)) }
            #expect(mapped.inputs == ["X": .array(expected)])
            // Values that are already numbers (JSON Lines, SQL) pass through.
            var typed = Self.row(cells)
            typed["f0"] = .number(0.5)
            typed["f1"] = .integer(9)
            let typedInputs = try #require(Self.map(mapper, typed)).inputs
            guard case .array(let values) = typedInputs["X"] else {
                Issue.record("X is not an array")
                return
            }
            #expect(Array(values.prefix(2)) == [.number(0.5), .integer(9)])
        }

        @Test(".column reads a JSON array text cell into a vector input (default mapping: the input's name)")
        func columnJSONArray() throws {
            let model = try EntitySourceTests.model("gbc_binary")
            let mapper = EntityRowMapper(batch: EntitySourceTests.batch(columns: ["X": .column("vec")]), model: model)
            #expect(mapper.columns == ["id", "vec"])
            // 0, 0.5, 1, 1.5, …: whole numbers stay integers.
            let cells = (0..<16).map { (i: Int) -> String in i % 2 == 0 ? "\(i / 2)" : "\(i / 2).5" }
            let text = "[" + cells.joined(separator: ", ") + "]"
            let mapped = try #require(Self.map(mapper, ["id": .string("a"), "vec": .string(text)]))
            let expected = (0..<16).map { (i: Int) -> JSONValue in
                i % 2 == 0 ? JSONValue.integer(Int64(i / 2)) : JSONValue.number(Double(i) / 2)
            }
            #expect(mapped.inputs == ["X": .array(expected)])
            let bad = Self.failure(mapper, ["id": .string("a"), "vec": .string("[1, 2,")])
            #expect(bad?.hasPrefix("column 'vec' (input 'X'): is not a valid JSON array") == true)

            let byName = EntityRowMapper(batch: EntitySourceTests.batch(), model: model)
            #expect(byName.columns == ["id", "X"])
            #expect(
                Self.map(byName, ["id": .string("a"), "X": .string("[1]")])?.inputs == ["X": .array([.integer(1)])])
        }

        @Test("an empty or NaN cell in a float input is a missing value (null)")
        func emptyFloatCell() throws {
            let mapper = EntityRowMapper(
                batch: EntitySourceTests.batch(columns: ["X": .columns(EntitySourceTests.sixteen)]),
                model: try EntitySourceTests.model("gbc_binary"))
            var cells = (0..<16).map { "\($0)" }
            cells[2] = ""
            cells[5] = "  "
            cells[7] = "NaN"
            let mapped = try #require(Self.map(mapper, Self.row(cells)))
            guard case .array(let values) = mapped.inputs["X"] else {
                Issue.record("X is not an array: \(String(describing: mapped.inputs["X"]))")
                return
            }
            #expect(values[2] == .null)
            #expect(values[5] == .null)
            #expect(values[7] == .null)
            #expect(values[3] == .integer(3))
            var fields = Self.row(cells)
            fields["f9"] = .null  // SQL NULL
            #expect(Self.map(mapper, fields) != nil)
        }

        @Test("an empty cell in an int64 input fails the row, naming the column and the input")
        func emptyIntegerCell() throws {
            let towers = try EntitySourceTests.model("two_tower")
            let mapper = EntityRowMapper(
                batch: EntitySourceTests.batch(columns: ["user_id": .column("uid")]), model: towers)
            #expect(Self.map(mapper, ["id": .string("u1"), "uid": .string("42")])?.inputs == ["user_id": .integer(42)])
            #expect(
                Self.failure(mapper, ["id": .string("u1"), "uid": .string("")])
                    == "column 'uid' (input 'user_id'): is empty")
            #expect(
                Self.failure(mapper, ["id": .string("u1"), "uid": .null]) == "column 'uid' (input 'user_id'): is empty")
            #expect(
                Self.failure(mapper, ["id": .string("u1"), "uid": .string("4x")])
                    == "column 'uid' (input 'user_id'): '4x' is not a number")
            #expect(Self.failure(mapper, ["id": .string("u1")]) == "column 'uid' (input 'user_id') is missing")

            // Mixed inputs: a float vector from columns and an int64 vector from a JSON array cell.
            let afe = try EntitySourceTests.model("ml_afe_scaler_normalizer")
            let twelve = (0..<12).map { "c\($0)" }
            let mixed = EntityRowMapper(
                batch: EntitySourceTests.batch(columns: ["X": .columns(twelve), "Xi": .column("ints")]), model: afe)
            var fields: [String: JSONValue] = ["id": .string("m"), "ints": .string("[1, 2, 3]")]
            for c in twelve { fields[c] = .string("0.5") }
            let mapped = try #require(Self.map(mixed, fields))
            #expect(mapped.inputs["Xi"] == .array([.integer(1), .integer(2), .integer(3)]))
            #expect(mapped.inputs["X"] == .array(Array(repeating: .number(0.5), count: 12)))
            fields["c3"] = .string("[1]")
            #expect(Self.failure(mixed, fields) == "column 'c3' (input 'X'): must be a single value")
        }

        @Test("the key column: missing or empty fails the row; integer keys become strings")
        func keys() throws {
            let mapper = EntityRowMapper(
                batch: EntitySourceTests.batch(key: "account", columns: ["X": .column("vec")]),
                model: try EntitySourceTests.model("gbc_binary"))
            #expect(mapper.columns.first == "account")
            let vec: JSONValue = .string("[" + Array(repeating: "1", count: 16).joined(separator: ",") + "]")
            #expect(Self.failure(mapper, ["vec": vec]) == "key column 'account' is missing")
            #expect(Self.failure(mapper, ["account": .string(""), "vec": vec])?.contains("'account'") == true)
            #expect(Self.failure(mapper, ["account": .null, "vec": vec])?.contains("'account'") == true)
            #expect(Self.failure(mapper, ["account": .number(1.5), "vec": vec])?.contains("'account'") == true)
            #expect(Self.map(mapper, ["account": .integer(42), "vec": vec])?.key == "42")
            #expect(Self.map(mapper, ["account": .integer(-7), "vec": vec])?.key == "-7")
            #expect(Self.map(mapper, ["account": .number(1234), "vec": vec])?.key == "1234")
            #expect(Self.map(mapper, ["account": .string("ключ 1"), "vec": vec])?.key == "ключ 1")
            #expect(
                Self.failure(mapper, ["account": .string("k"), "vec": .string("abc")])
                    == "column 'vec' (input 'X'): 'abc' is not a number")
        }
    }
}

// MARK: - BatchRunner.compute

extension EntitySourceTests {
    @Suite("Batch compute")
    struct Compute {
        static let columns = ["X": BatchSpec.ColumnMapping.columns(EntitySourceTests.sixteen)]

        /// A CSV of `count` rows `k1…`, with a header `id,f0…f15`; `edit` may change a row's cells.
        static func csv(count: Int, edit: (Int, inout [String]) -> Void = { _, _ in }) -> String {
            var lines = ["id," + EntitySourceTests.sixteen.joined(separator: ",")]
            for i in 1...count {
                var cells = (0..<16).map { j in String(Double((i * 7 + j * 3) % 11) / 4 - 1) }
                edit(i, &cells)
                lines.append("k\(i)," + cells.joined(separator: ","))
            }
            return lines.joined(separator: "\n") + "\n"
        }

        /// What the model answers for `records` run as one batch, one output object per row.
        static func expected(_ records: [EntityRecord], mapper: EntityRowMapper, model: Model) throws -> [JSONValue] {
            let rows = try records.map { try $0.fields.flatMap(mapper.map).get().inputs }
            let outputs = try model.run(try RowBatch.tensors(rows: rows, inputs: model.metadata.inputs))
            return try RowBatch.rows(outputs: outputs, count: rows.count).map(JSONValue.object)
        }

        /// Numbers compare by value (an integer-valued float may be written as an integer), within 1e-6.
        static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
            switch (a, b) {
            case (.array(let x), .array(let y)):
                return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
            case (.object(let x), .object(let y)):
                return Set(x.keys) == Set(y.keys)
                    && x.allSatisfy { key, value in y[key].map { same(value, $0) } ?? false }
            case (.integer, _), (.number, _):
                guard let p = a.doubleValue, let q = b.doubleValue, b.isNumber else { return false }
                return p == q || abs(p - q) <= 1e-6 * max(1, abs(q))
            default:
                return a == b
            }
        }

        static func parsed(_ outputs: [[UInt8]]) throws -> [JSONValue] {
            try outputs.map { try JSONValue.parse($0) }
        }

        @Test("a slice with one bad cell yields outputs for the good rows and one failure at the bad row")
        func badCell() throws {
            let folder = try EntitySourceTests.Folder()
            let path = try folder.write(
                "scores.csv", Self.csv(count: 5) { i, cells in if i == 3 { cells[4] = "oops" } })
            let records = try EntitySourceTests.readAll(try CSVEntityReader(path: path))
            let model = try EntitySourceTests.model("gbc_binary")
            let mapper = EntityRowMapper(batch: EntitySourceTests.batch(columns: Self.columns), model: model)

            let part = BatchRunner.compute(records, mapper: mapper, model: model, keys: nil, outputs: nil)
            #expect(part.keys == ["k1", "k2", "k4", "k5"])
            #expect(part.failures.count == 1)
            let failure = try #require(part.failures.first)
            #expect(failure.ordinal == 3)
            #expect(failure.location == "scores.csv:4")
            #expect(failure.reason == "column 'f4' (input 'X'): 'oops' is not a number")
            // RowFailure.key: "Its key, when it could be read" — the key column of this row is fine.
            #expect(failure.key == "k3")

            let good = records.filter { $0.ordinal != 3 }
            let expected = try Self.expected(good, mapper: mapper, model: model)
            let actual = try Self.parsed(part.outputs.rows)
            #expect(actual.count == expected.count)
            for (a, e) in zip(actual, expected) {
                #expect(Self.same(a, e), "\(a) != \(e)")
            }
            // The outputs hold every model output.
            if case .object(let first) = actual.first {
                #expect(Set(first.keys) == ["label", "probabilities"])
            } else {
                Issue.record("an output is not a JSON object")
            }
        }

        @Test(
            "the columnar path, in one pass or cell by cell, gives the record path's keys, outputs and failures (spaces, exponents, nan, quotes, long mantissas, bad cells, field counts)"
        )
        func columnarAgrees() throws {
            let folder = try EntitySourceTests.Folder()
            let odd = [
                "1.5", "-0.25", "+3", "42", "1e-3", " 2.5 ", "nan", "", "\"7.25\"", "0.1234567890123456789",
                "12345678901234567.5", ".5", "1.", "-0", "00012.50", "9007199254740993.25", "2.5E2", "\t4",
                "123456789.987654321", "-98765432.1",
            ]
            let path = try folder.write(
                "odd.csv",
                Self.csv(count: 40) { i, cells in
                    cells[i % 16] = odd[i % odd.count]
                    if i == 7 { cells[3] = "oops" }
                    if i == 9 { cells[5] = "1.2.3" }
                    if i == 11 { cells[0] = "--1" }
                    if i == 13 { cells.removeLast() }
                    if i == 15 { cells.append("0.5") }
                    if i == 17 { cells[15] = "1,5" }  // one field too many
                }
                .replacingOccurrences(of: "k19,", with: ","))  // an empty key
            let records = try EntitySourceTests.readAll(try CSVEntityReader(path: path))
            let model = try EntitySourceTests.model("gbc_binary")
            let mapper = EntityRowMapper(batch: EntitySourceTests.batch(columns: Self.columns), model: model)
            let expected = BatchRunner.compute(records, mapper: mapper, model: model, keys: nil, outputs: nil)
            #expect(expected.failures.count == 7, "\(expected.failures.map(\.reason))")

            let reader = try CSVEntityReader(path: path)
            let chunk = try reader.nextRaw(maxRows: 100)
            let plan = try #require(CSVColumnarPlan(mapper: mapper, header: reader.header))
            #expect(plan.targets != nil)
            let everyKey = Set(records.compactMap { try? mapper.key($0.fields.get()).get() })
            // keys nil: plain rows in one pass; a key subset (here every key): every row cell by cell.
            for keys in [nil, everyKey] {
                let part = BatchRunner.computeColumnar(
                    chunk, range: 0..<chunk.rows, plan: plan, mapper: mapper, model: model, keys: keys, outputs: nil)
                let label = keys == nil ? "one pass" : "cell by cell"
                #expect(part.keys == expected.keys, "\(label)")
                #expect(part.outputs == expected.outputs, "\(label)")
                #expect(part.failures.map(\.ordinal) == expected.failures.map(\.ordinal), "\(label)")
                #expect(part.failures.map(\.location) == expected.failures.map(\.location), "\(label)")
                #expect(part.failures.map(\.key) == expected.failures.map(\.key), "\(label)")
                #expect(part.failures.map(\.reason) == expected.failures.map(\.reason), "\(label)")
            }
        }

        @Test(
            "SQL columnar path: numeric cells, NULLs and integer keys give the record path's keys and outputs; a chunk with a text cell or a bad key goes the record path whole"
        )
        func sqlTableAgrees() throws {
            let folder = try EntitySourceTests.Folder()
            let columns = EntitySourceTests.sixteen
            var inserts: [String] = []
            for i in 1...60 {
                var cells = (0..<16).map { j in String(Double((i * 7 + j * 3) % 11) / 4 - 1) }
                if i % 9 == 0 { cells[i % 16] = "NULL" }  // missing: NaN, as the record path reads it
                if i % 5 == 0 { cells[2] = String((i * 13) % 7) }  // an INTEGER cell in a REAL column
                let key = i % 4 == 0 ? String(i) : "'k\(i)'"  // integer and text keys
                inserts.append("(\(key), " + cells.joined(separator: ", ") + ")")
            }
            try folder.database(
                "clean.sqlite",
                // f2 has no type: its integers stay INTEGER cells (in a REAL column they would be stored as reals).
                "CREATE TABLE t (id, " + columns.map { $0 == "f2" ? $0 : "\($0) REAL" }.joined(separator: ", ") + ");"
                    + "INSERT INTO t VALUES " + inserts.joined(separator: ",\n") + ";")
            let model = try EntitySourceTests.model("gbc_binary")
            let mapper = EntityRowMapper(batch: EntitySourceTests.batch(columns: Self.columns), model: model)

            func check(_ database: String, fast: Bool) throws {
                let path = folder.url.appendingPathComponent(database).path
                let records = try EntitySourceTests.readAll(
                    try SQLEntityReader(path: path, query: "SELECT * FROM t", offset: 0))
                let expected = BatchRunner.compute(records, mapper: mapper, model: model, keys: nil, outputs: nil)
                let reader = try SQLEntityReader(path: path, query: "SELECT * FROM t", offset: 0)
                let plan = try #require(CSVColumnarPlan(mapper: mapper, header: reader.columns))
                let (table, first) = try reader.nextTable(maxRows: 100)
                #expect(table.rows == records.count && first == 1)
                let taken = BatchRunner.tableFastPath(table, plan: plan, model: model, keys: nil, outputs: nil)
                #expect((taken != nil) == fast, "\(database)")
                let part = BatchRunner.computeTable(
                    table, firstOrdinal: first, name: database, plan: plan, mapper: mapper, model: model, keys: nil,
                    outputs: nil)
                #expect(!part.keys.isEmpty)
                #expect(part.keys == expected.keys, "\(database)")
                #expect(part.outputs == expected.outputs, "\(database)")
                #expect(part.failures.map(\.reason) == expected.failures.map(\.reason), "\(database)")
                #expect(part.failures.map(\.location) == expected.failures.map(\.location), "\(database)")
                // A backfill's key subset: only those rows.
                let subset: Set<String> = ["k1", "4", "k7"]
                let sub = BatchRunner.computeTable(
                    table, firstOrdinal: first, name: database, plan: plan, mapper: mapper, model: model,
                    keys: subset, outputs: nil)
                let expectedSub = BatchRunner.compute(records, mapper: mapper, model: model, keys: subset, outputs: nil)
                #expect(sub.keys == expectedSub.keys && sub.keys.count == 3)
                #expect(sub.outputs == expectedSub.outputs)
            }
            try check("clean.sqlite", fast: true)

            // Text that reads as a number; a NULL key: the record path decides each (a value; a failure).
            let clean = folder.url.appendingPathComponent("clean.sqlite").path
            for (name, change) in [
                ("text.sqlite", "UPDATE t SET f2 = ' 2.5' WHERE id = 'k2';"),  // f2 keeps text as text
                ("nullkey.sqlite", "UPDATE t SET id = NULL WHERE id = 'k3';"),
            ] {
                try FileManager.default.copyItem(atPath: clean, toPath: folder.url.appendingPathComponent(name).path)
                try folder.database(name, change)
                try check(name, fast: false)
            }
        }

        @Test("a row the model rejects fails alone (with its key); the other rows of the slice are computed")
        func modelRejectsRow() throws {
            let folder = try EntitySourceTests.Folder()
            let vector = { (n: Int, seed: Int) in
                "\"[" + (0..<n).map { String(Double(($0 * 5 + seed) % 9) / 3) }.joined(separator: ", ") + "]\""
            }
            let lines = ["id,vec"] + (1...4).map { i in "k\(i)," + vector(i == 2 ? 15 : 16, i) }
            let path = try folder.write("vectors.csv", lines.joined(separator: "\n"))
            let records = try EntitySourceTests.readAll(try CSVEntityReader(path: path))
            let model = try EntitySourceTests.model("gbc_binary")
            let mapper = EntityRowMapper(batch: EntitySourceTests.batch(columns: ["X": .column("vec")]), model: model)

            let part = BatchRunner.compute(records, mapper: mapper, model: model, keys: nil, outputs: nil)
            #expect(part.keys == ["k1", "k3", "k4"])
            #expect(part.failures.map(\.ordinal) == [2])
            #expect(part.failures.first?.location == "vectors.csv:3")
            #expect(part.failures.first?.key == "k2")
            #expect(part.failures.first?.reason.contains("15") == true)
            let expected = try Self.expected(records.filter { $0.ordinal != 2 }, mapper: mapper, model: model)
            let actual = try Self.parsed(part.outputs.rows)
            #expect(actual.count == 3)
            for (a, e) in zip(actual, expected) { #expect(Self.same(a, e), "\(a) != \(e)") }
        }

        @Test("unreadable records and JSON Lines rows with integer keys")
        func jsonLinesRows() throws {
            let folder = try EntitySourceTests.Folder()
            let vec = (0..<16).map { String(Double($0) / 8) }.joined(separator: ",")
            let path = try folder.write(
                "rows.jsonl", "{\"id\": 7, \"X\": [\(vec)]}\nnot json\n{\"id\": 8, \"X\": [\(vec)]}\n")
            let records = try EntitySourceTests.readAll(try JSONLinesEntityReader(path: path))
            let model = try EntitySourceTests.model("gbc_binary")
            let mapper = EntityRowMapper(batch: EntitySourceTests.batch(), model: model)
            let part = BatchRunner.compute(records, mapper: mapper, model: model, keys: nil, outputs: ["probabilities"])
            #expect(part.keys == ["7", "8"])
            #expect(part.failures.map(\.location) == ["rows.jsonl:2"])
            #expect(part.failures.first?.key == nil)
            #expect(part.failures.first?.reason.hasPrefix("is not valid JSON") == true)
            // Only the feature's selected outputs are kept.
            for output in try Self.parsed(part.outputs.rows) {
                guard case .object(let object) = output else {
                    Issue.record("an output is not a JSON object")
                    continue
                }
                #expect(Array(object.keys) == ["probabilities"])
            }
            let expected = try Self.expected(records.filter { $0.ordinal != 2 }, mapper: mapper, model: model)
            let probabilities = expected.map { row -> JSONValue in
                guard case .object(let object) = row, let value = object["probabilities"] else { return row }
                return .object(["probabilities": value])
            }
            #expect(probabilities.count == 2)
            for (a, e) in zip(try Self.parsed(part.outputs.rows), probabilities) {
                #expect(Self.same(a, e), "\(a) != \(e)")
            }
        }

        @Test("keys: a bad row whose key is outside the subset is not the run's failure")
        func keySubsetIgnoresOtherRows() throws {
            let folder = try EntitySourceTests.Folder()
            let path = try folder.write(
                "scores.csv", Self.csv(count: 4) { i, cells in if i == 3 { cells[0] = "not a number" } })
            let records = try EntitySourceTests.readAll(try CSVEntityReader(path: path))
            let model = try EntitySourceTests.model("gbc_binary")
            let mapper = EntityRowMapper(batch: EntitySourceTests.batch(columns: Self.columns), model: model)
            // A backfill of k1 and k2: row 3 (key k3) is not part of it.
            let part = BatchRunner.compute(records, mapper: mapper, model: model, keys: ["k1", "k2"], outputs: nil)
            #expect(part.keys == ["k1", "k2"])
            #expect(part.failures.isEmpty, "failures outside the subset: \(part.failures)")
        }

        @Test("keys: only rows whose key is in the subset are computed")
        func keySubset() throws {
            let folder = try EntitySourceTests.Folder()
            let path = try folder.write("scores.csv", Self.csv(count: 6))
            let records = try EntitySourceTests.readAll(try CSVEntityReader(path: path))
            let model = try EntitySourceTests.model("gbc_binary")
            let mapper = EntityRowMapper(batch: EntitySourceTests.batch(columns: Self.columns), model: model)

            let part = BatchRunner.compute(
                records, mapper: mapper, model: model, keys: ["k5", "k2", "absent"], outputs: nil)
            #expect(part.keys == ["k2", "k5"])
            #expect(part.failures.isEmpty)
            let expected = try Self.expected(
                records.filter { [2, 5].contains($0.ordinal) }, mapper: mapper, model: model)
            for (a, e) in zip(try Self.parsed(part.outputs.rows), expected) { #expect(Self.same(a, e), "\(a) != \(e)") }

            let none = BatchRunner.compute(records, mapper: mapper, model: model, keys: [], outputs: nil)
            #expect(none.keys.isEmpty)
            #expect(none.outputs.count == 0 && none.outputs.bytes.isEmpty)
            let empty = BatchRunner.compute([], mapper: mapper, model: model, keys: nil, outputs: nil)
            #expect(empty.keys.isEmpty && empty.failures.isEmpty)
        }
    }
}

extension JSONValue {
    fileprivate var isNumber: Bool {
        switch self {
        case .integer, .number: true
        default: false
        }
    }
}
