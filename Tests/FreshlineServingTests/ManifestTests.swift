import Foundation
import FreshlineCore
import FreshlineJSON
import FreshlineRuntime
import FreshlineTestSupport
import Testing

@Suite("Manifest")
struct ManifestTests {
    @Test("a full manifest parses with defaults filled in")
    func parses() throws {
        let manifest = try ManifestLoader.load(path: try TestManifest.write(TestManifest.standard))
        #expect(manifest.models.keys.sorted() == ["gbdt", "mlp", "towers"])
        let churn = try #require(manifest.features["churn"])
        #expect(churn.pattern == .realtime)
        #expect(churn.key == "account_id")
        #expect(churn.latencyBudget == .seconds(60))
        #expect(churn.maxStaleness == .seconds(86_400))
        #expect(churn.batching == BatchingSettings())
        #expect(manifest.features["fraud"]?.onFailure == .defaultValue(["label": .integer(0)]))
        #expect(manifest.features["recs"]?.batching.maxBatchSize == 32)
        #expect(manifest.tokens.map(\.name) == ["app", "ops"])
        #expect(manifest.server.port == 8080)
    }

    private func errors(_ yaml: String) throws -> [ManifestError] {
        do {
            _ = try ManifestLoader.load(path: try TestManifest.write(yaml))
            return []
        } catch let errors as ManifestErrors {
            return errors.errors
        }
    }

    @Test("errors name the line and the key")
    func locatedErrors() throws {
        let found = try errors(
            """
            models:
              m: ZOO/gbc_binary.onnx
            features:
              a:
                model: m
                latency_budget: fast
              b:
                model: nowhere
                colour: blue
            """)
        #expect(found.count == 3)
        let budget = try #require(found.first { $0.location.keyPath == "features.a.latency_budget" })
        #expect(budget.location.line == 6)
        #expect(budget.message.contains("duration"))
        let model = try #require(found.first { $0.location.keyPath == "features.b.model" })
        #expect(model.location.line == 8)
        #expect(model.message.contains("unknown model 'nowhere'"))
        let unknown = try #require(found.first { $0.location.keyPath == "features.b.colour" })
        #expect(unknown.location.line == 9)
        #expect(
            unknown.description.hasSuffix(
                "freshline.yaml:9: features.b.colour: unknown key (expected one of: advice, async, batch, batching, compose, description, inputs, key, latency_budget, max_staleness, model, on_failure, outputs, pattern, user_blocking)"
            ))
    }

    @Test("job quota and retention: defaults, values, and out-of-range values reported at their line")
    func jobLimits() throws {
        let base = "models:\n  m: ZOO/gbc_binary.onnx\nfeatures:\n  a: {model: m}\n"
        let defaults = try ManifestLoader.load(path: try TestManifest.write(base))
        #expect(defaults.server.maxQueuedJobsPerToken == 1000)
        #expect(defaults.server.jobRetention == .seconds(7 * 86_400))
        let set = try ManifestLoader.load(
            path: try TestManifest.write(base + "server:\n  max_queued_jobs_per_token: 2\n  job_retention: 36h\n"))
        #expect(set.server.maxQueuedJobsPerToken == 2)
        #expect(set.server.jobRetention == .seconds(36 * 3600))

        let found = try errors(base + "server:\n  max_queued_jobs_per_token: 0\n  job_retention: 10s\n")
        #expect(found.count == 2)
        let quota = try #require(found.first { $0.location.keyPath == "server.max_queued_jobs_per_token" })
        #expect(quota.location.line == 6)
        #expect(
            quota.description.hasSuffix(
                "freshline.yaml:6: server.max_queued_jobs_per_token: must be a whole number from 1 to 10000000"))
        let retention = try #require(found.first { $0.location.keyPath == "server.job_retention" })
        #expect(retention.location.line == 7)
        #expect(retention.message == "must be a duration from 1m to 3650d")
        #expect(
            try errors(base + "server:\n  job_retention: 3651d\n").map(\.location.keyPath) == ["server.job_retention"])
    }

    @Test("store.call_timeout defaults to 5 s, parses, and is range-checked at its line")
    func storeCallTimeout() throws {
        let base = "models:\n  m: ZOO/gbc_binary.onnx\nfeatures:\n  a:\n    model: m\n"
        #expect(try ManifestLoader.load(path: try TestManifest.write(base)).store.callTimeout == .seconds(5))
        let set = try ManifestLoader.load(
            path: try TestManifest.write(base + "store:\n  location: postgres://u@h/d\n  call_timeout: 250ms\n"))
        #expect(set.store.callTimeout == .milliseconds(250))
        #expect(set.store.location == "postgres://u@h/d")
        for bad in ["0s", "50ms", "11m", "soon"] {
            let found = try errors(base + "store:\n  call_timeout: \(bad)\n")
            #expect(found.count == 1, "\(bad)")
            let error = try #require(found.first)
            #expect(error.location.keyPath == "store.call_timeout")
            #expect(error.location.line == 7)
            #expect(
                error.description.hasSuffix(
                    "freshline.yaml:7: store.call_timeout: must be a duration from 100ms to 10m"))
        }
    }

    @Test("pricing.models: token prices per upstream model, the batch discount defaulting to half price")
    func tokenPrices() throws {
        let manifest = try ManifestLoader.load(
            path: try TestManifest.write(
                """
                pricing:
                  currency: EUR
                  models:
                    chat: {input_per_million: 2.5, output_per_million: 10}
                    embed:
                      input_per_million: 0.02
                      output_per_million: 0
                      batch_discount: 0.25
                models:
                  chat: {kind: oip, url: "http://127.0.0.1:9/", model: sk}
                  embed: {kind: oip, url: "http://127.0.0.1:9/", model: em}
                  m: ZOO/gbc_binary.onnx
                features:
                  a: {model: chat}
                """))
        #expect(manifest.pricing.currency == "EUR")
        #expect(manifest.pricing.coreHour == Pricing().coreHour)
        #expect(
            manifest.pricing.models == [
                "chat": TokenPrice(inputPerMillion: 2.5, outputPerMillion: 10, batchDiscount: 0.5),
                "embed": TokenPrice(inputPerMillion: 0.02, outputPerMillion: 0, batchDiscount: 0.25),
            ])
        let plain = try ManifestLoader.load(
            path: try TestManifest.write("models:\n  m: ZOO/gbc_binary.onnx\nfeatures:\n  a: {model: m}\n"))
        #expect(plain.pricing.models.isEmpty)
    }

    @Test("pricing.models mistakes are errors at their line: ranges, unknown keys and models, local models")
    func tokenPriceErrors() throws {
        let found = try errors(
            """
            models:
              llm: {kind: oip, url: "http://127.0.0.1:9/", model: sk}
              m: ZOO/gbc_binary.onnx
            features:
              a: {model: llm}
            pricing:
              models:
                llm: {input_per_million: -1, output_per_million: 10, batch_discount: 1.5, cached: 1}
                gpt: {input_per_million: 1, output_per_million: 2}
                m: {input_per_million: 1, output_per_million: 2}
                other:
                  input_per_million: 1
              colour: blue
            """)
        let byKey = Dictionary(found.map { ($0.location.keyPath, $0) }) { a, _ in a }
        #expect(found.count == 8, "\(found.map(\.description))")
        #expect(byKey["pricing.models.llm.input_per_million"]?.location.line == 8)
        #expect(byKey["pricing.models.llm.input_per_million"]?.message.contains("must be a number from 0") == true)
        #expect(byKey["pricing.models.llm.batch_discount"]?.message == "must be a number from 0.0 to 1.0")
        #expect(
            byKey["pricing.models.llm.cached"]?.description.hasSuffix(
                "freshline.yaml:8: pricing.models.llm.cached: unknown key (expected one of: batch_discount, "
                    + "input_per_million, output_per_million)") == true)
        #expect(
            byKey["pricing.models.gpt"]?.description.hasSuffix(
                "freshline.yaml:9: pricing.models.gpt: unknown model 'gpt' (models: llm, m)") == true)
        #expect(byKey["pricing.models.m"]?.location.line == 10)
        #expect(byKey["pricing.models.m"]?.message.contains("apply to upstream models") == true)
        #expect(byKey["pricing.models.other"]?.location.line == 11)
        #expect(byKey["pricing.models.other.output_per_million"]?.message == "is required")
        #expect(byKey["pricing.models.other.output_per_million"]?.location.line == 12)
        #expect(
            byKey["pricing.colour"]?.description.hasSuffix(
                "freshline.yaml:13: pricing.colour: unknown key (expected one of: async_min_workers, "
                    + "batch_overhead_per_month, core_hour, currency, instance_cores, instance_hour, min_instances, "
                    + "models, spot_discount, storage_gb_month, store_write_per_million)") == true)
    }

    @Test("YAML syntax errors name the line")
    func syntax() throws {
        let found = try errors("features:\n  a: [unclosed\n")
        #expect(found.count == 1)
        #expect(found.first?.location.line ?? 0 >= 2)
        #expect(found.first?.message.contains("not valid YAML") == true)
    }

    @Test("declared inputs and outputs are checked against the ONNX file")
    func checkedAgainstModel() throws {
        let manifest = try ManifestLoader.load(
            path: try TestManifest.write(
                """
                models:
                  m: ZOO/gbc_binary.onnx
                features:
                  a:
                    model: m
                    outputs: [label, score]
                    inputs:
                      X: int64[16]
                      Y: float
                  b:
                    model: m
                    inputs:
                      X: float[15]
                    on_failure:
                      default: {nothing: 1}
                """))
        let (models, loadErrors) = ServingModel.loadAll(manifest)
        #expect(loadErrors.isEmpty)
        let problems = ManifestValidator.problems(manifest, models: models)
        let messages = problems.map(\.description)
        #expect(problems.count == 5, "\(messages)")
        #expect(messages.contains { $0.contains(":8: features.a.inputs.X: model input 'X' is float, declared int64") })
        #expect(messages.contains { $0.contains(":9: features.a.inputs.Y: model 'm' has no input 'Y'") })
        #expect(messages.contains { $0.contains("features.a.outputs: model 'm' has no output 'score'") })
        #expect(
            messages.contains {
                $0.contains(":13: features.b.inputs.X: model input 'X' has per-row shape [\"16\"], declared [15]")
            })
        #expect(messages.contains { $0.contains("features.b.on_failure.default.nothing: is not an output") })
    }

    @Test("configuration JSON: whole numbers become integers (1 and 1.0 alike), others stay numbers")
    func configurationNumbers() throws {
        let manifest = try ManifestLoader.parse(
            """
            version: 1
            models:
              m: m.onnx
            features:
              f:
                model: m
                on_failure:
                  default: {a: 1, b: 1.0, c: 0.25, d: "1", e: [2, 2.5], f: null, g: true}
            """, path: "/tmp/freshline.yaml", environment: [:])
        guard case .defaultValue(let value)? = manifest.features["f"]?.onFailure else {
            Issue.record("no default")
            return
        }
        #expect(value["a"] == .integer(1))
        #expect(value["b"] == .integer(1))
        #expect(value["c"] == .number(0.25))
        #expect(value["d"] == .string("1"))
        #expect(value["e"] == .array([.integer(2), .number(2.5)]))
        #expect(value["f"] == .null)
        #expect(value["g"] == .bool(true))
    }

    @Test("a missing model file is reported at its entry")
    func missingModelFile() throws {
        let manifest = try ManifestLoader.load(
            path: try TestManifest.write(
                """
                models:
                  m: /nonexistent/model.onnx
                features:
                  a: {model: m}
                """))
        let (_, loadErrors) = ServingModel.loadAll(manifest)
        #expect(loadErrors.count == 1)
        #expect(loadErrors.first?.location.line == 2)
        #expect(loadErrors.first?.message.contains("cannot load /nonexistent/model.onnx") == true)
    }

    @Test(
        "an unset secret variable fails the load for serving, but is only a warning for checking (token and webhook)")
    func unsetSecrets() throws {
        let yaml = """
            models:
              m: ZOO/gbc_binary.onnx
            features:
              a: {model: m, pattern: async}
            tokens:
              - {name: app, token_env: EXAMPLE_APP_TOKEN, scopes: [predict]}
              - {name: ops, token: ops-secret, scopes: [admin]}
            server:
              webhooks:
                secret_env: EXAMPLE_WEBHOOK_SECRET
            """
        let path = try TestManifest.write(yaml)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        // Serving: each unset variable is an error at its line.
        do {
            _ = try ManifestLoader.parse(text, path: path, environment: [:])
            Issue.record("a manifest whose secrets are unset loaded for serving")
        } catch let errors as ManifestErrors {
            #expect(
                errors.errors.map(\.description) == [
                    "\(path):6: tokens[0].token_env: environment variable EXAMPLE_APP_TOKEN is not set",
                    "\(path):10: server.webhooks.secret_env: environment variable EXAMPLE_WEBHOOK_SECRET is not set",
                ])
        }
        // Checking: the same manifest loads; the unset variables come back as warnings, named and located.
        let (manifest, unset) = try ManifestLoader.loadWithoutSecrets(path: path, environment: [:])
        #expect(
            unset.map(\.description) == [
                "\(path):6: tokens[0].token_env: environment variable EXAMPLE_APP_TOKEN is not set (serving refuses to start without it)",
                "\(path):10: server.webhooks.secret_env: environment variable EXAMPLE_WEBHOOK_SECRET is not set (serving refuses to start without it)",
            ])
        #expect(manifest.tokens.map(\.name) == ["ops"])
        #expect(manifest.server.webhooks.secret == nil)
        // Set: no warning, and the same manifest as serving loads.
        let environment = ["EXAMPLE_APP_TOKEN": "app-secret", "EXAMPLE_WEBHOOK_SECRET": "whsec"]
        let (set, none) = try ManifestLoader.loadWithoutSecrets(path: path, environment: environment)
        #expect(none.isEmpty)
        #expect(set == (try ManifestLoader.parse(text, path: path, environment: environment)))
        #expect(set.tokens.map(\.name) == ["app", "ops"] && set.server.webhooks.secret == "whsec")
        // Other problems still fail the check.
        let broken = try TestManifest.write(yaml.replacingOccurrences(of: "pattern: async", with: "pattern: sometimes"))
        #expect(throws: ManifestErrors.self) {
            _ = try ManifestLoader.loadWithoutSecrets(path: broken, environment: [:])
        }
    }

    @Test("durations parse and print")
    func durations() {
        #expect(DurationText.parse("250ms") == .milliseconds(250))
        #expect(DurationText.parse("1h30m") == .seconds(5400))
        #expect(DurationText.parse("7d") == .seconds(604_800))
        #expect(DurationText.parse("1.5s") == .milliseconds(1500))
        #expect(DurationText.parse("0") == .zero)
        #expect(DurationText.parse("fast") == nil)
        #expect(DurationText.parse("10") == nil)
        #expect(DurationText.parse("-5s") == nil)
        #expect(DurationText.format(.milliseconds(250)) == "250ms")
        #expect(DurationText.format(.seconds(21_600)) == "6h")
    }

    @Test("timestamps are RFC 3339 in UTC")
    func timestamps() {
        #expect(Timestamp.rfc3339(0) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.rfc3339(1_795_939_200.25) == "2026-11-29T08:00:00.250Z")
        #expect(Timestamp.rfc3339(951_782_400) == "2000-02-29T00:00:00.000Z")
    }
}
