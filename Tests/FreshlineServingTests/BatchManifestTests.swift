import Foundation
import FreshlineCore
import FreshlineRuntime
import FreshlineTestSupport
import Testing

/// The manifest's `batch:` section: defaults, located errors, and checks against the model and the source.
@Suite("Batch manifest")
struct BatchManifestTests {
    private func errors(_ yaml: String) throws -> [String] {
        do {
            _ = try ManifestLoader.load(path: try TestManifest.write(yaml))
            return []
        } catch let errors as ManifestErrors {
            return errors.errors.map(\.description)
        }
    }

    @Test("a batch section parses with its defaults")
    func defaults() throws {
        let manifest = try ManifestLoader.load(
            path: try TestManifest.write(
                """
                models:
                  m: ZOO/gbc_binary.onnx
                features:
                  churn:
                    model: m
                    pattern: batch
                    key: user_id
                    batch:
                      schedule: "0 2 * * *"
                      source: {csv: users.csv}
                      columns:
                        X: [a, b]
                  scores:
                    model: m
                    batch:
                      source:
                        sql: {database: app.sqlite, query: "SELECT id, x FROM users ORDER BY id"}
                      key_column: id
                      columns: {X: x}
                      cold_start: error
                      on_stale: fallback
                      catch_up: skip
                      retention: 5
                      chunk_rows: 100
                      threads: 1
                """))
        let churn = try #require(manifest.features["churn"]?.batch)
        #expect(churn.schedule?.description == "0 2 * * *")
        #expect(churn.source == .csv(path: "users.csv"))
        #expect(churn.keyColumn == "user_id")
        #expect(churn.columns == ["X": .columns(["a", "b"])])
        #expect(churn.coldStart == .realtime && churn.onStale == .realtime && churn.catchUp == .once)
        #expect(churn.retention == 3 && churn.chunkRows == 4096 && churn.threads == 2)
        let scores = try #require(manifest.features["scores"]?.batch)
        #expect(scores.source == .sql(database: "app.sqlite", query: "SELECT id, x FROM users ORDER BY id"))
        #expect(scores.keyColumn == "id" && scores.columns == ["X": .column("x")])
        #expect(scores.coldStart == .error && scores.onStale == .fallback && scores.catchUp == .skip)
        #expect(scores.retention == 5 && scores.chunkRows == 100 && scores.threads == 1)
        #expect(manifest.features["scores"]?.pattern == .realtime, "a batch section does not change the pattern")
    }

    @Test("batch errors name the line and the key")
    func located() throws {
        let found = try errors(
            """
            models:
              m: ZOO/gbc_binary.onnx
            features:
              a:
                model: m
                pattern: batch
              b:
                model: m
                key: k
                batch:
                  schedule: "61 * * * *"
                  source: {csv: a.csv, jsonl: b.jsonl}
                  cold_start: sometimes
                  colour: red
              c:
                model: m
                batch:
                  source: {sql: {database: x.sqlite}}
            """)
        #expect(
            found.contains {
                $0.hasSuffix(":5: features.a.batch: is required for pattern: batch (schedule, source, key column)")
            })
        #expect(found.contains { $0.contains(":11: features.b.batch.schedule: not a cron schedule") })
        #expect(
            found.contains { $0.contains(":12: features.b.batch.source: must name exactly one of csv, jsonl, sql") })
        #expect(
            found.contains {
                $0.contains(":13: features.b.batch.cold_start: must be one of realtime, default, error")
            })
        #expect(found.contains { $0.contains(":14: features.b.batch.colour: unknown key") })
        #expect(
            found.contains {
                $0.contains(":18: features.c.batch.source.sql: needs database (an SQLite file) and query")
            })
    }

    @Test("the validator checks columns against the model and the CSV header, and the cold-start default")
    func validated() throws {
        let path = try TestManifest.write(
            """
            models:
              m: ZOO/gbc_binary.onnx
            features:
              a:
                model: m
                key: user_id
                batch:
                  source: {csv: users.csv}
                  columns:
                    X: [f0, f1, f2]
                    Y: y
                  cold_start: default
              b:
                model: m
                key: user_id
                batch:
                  source: {csv: missing.csv}
            """)
        try "user_id,f0,f1\nu1,1,2\n".write(
            to: URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("users.csv"),
            atomically: true, encoding: .utf8)
        let manifest = try ManifestLoader.load(path: path)
        let (models, _) = ServingModel.loadAll(manifest)
        let messages = ManifestValidator.problems(manifest, models: models).map(\.description)
        #expect(messages.contains { $0.contains("features.a.batch.columns.Y: model 'm' has no input 'Y'") })
        #expect(messages.contains { $0.contains("features.a.batch.cold_start: is 'default' but the feature has no") })
        #expect(messages.contains { $0.contains("features.a.batch.source:") && $0.contains("lacks the column(s) f2") })
        #expect(messages.contains { $0.contains("features.b.batch.source:") && $0.contains("missing.csv") })
    }
}
