public import FreshlineCore
internal import FreshlineEngine

/// Checks a manifest's features against the models they run: declared inputs exist with the right type and
/// shape, selected outputs and default values name real outputs.
public enum ManifestValidator {
    /// Every problem found; empty when the manifest is consistent with its models.
    public static func problems(_ manifest: Manifest, models: [String: ServingModel]) -> [ManifestError] {
        var errors: [ManifestError] = []
        for feature in manifest.features.values.sorted(by: { $0.name < $1.name }) {
            guard let model = models[feature.model] else { continue }  // reported by the loader
            let metadata = model.metadata
            let path = "features.\(feature.name)"
            if let output = feature.decision.output {
                let served = feature.outputs ?? metadata.outputs.map(\.name)
                if !served.contains(output) {
                    errors.append(
                        ManifestError(
                            SourceLocation(
                                file: feature.location.file, line: feature.location.line,
                                keyPath: "\(path).advice.decision.output"),
                            "'\(output)' is not among the feature's outputs (\(served.joined(separator: ", ")))"))
                }
            }
            for declared in feature.inputs {
                guard let actual = metadata.inputs.first(where: { $0.name == declared.name }) else {
                    let names = metadata.inputs.map(\.name).joined(separator: ", ")
                    errors.append(
                        ManifestError(
                            declared.location,
                            "model '\(feature.model)' has no input '\(declared.name)' (inputs: \(names))"))
                    continue
                }
                if actual.elementType.description != declared.elementType {
                    errors.append(
                        ManifestError(
                            declared.location,
                            "model input '\(declared.name)' is \(actual.elementType), declared \(declared.elementType)")
                    )
                }
                if let shape = actual.shape, shape.count >= 1 {
                    let perRow = Array(shape.dropFirst())
                    let matches =
                        perRow.count == declared.shape.count
                        && zip(perRow, declared.shape).allSatisfy { $0 < 0 || $0 == $1 }
                    if !matches {
                        errors.append(
                            ManifestError(
                                declared.location,
                                "model input '\(declared.name)' has per-row shape \(perRow.map { $0 < 0 ? "?" : String($0) }), declared \(declared.shape)"
                            ))
                    }
                }
            }
            let outputNames = Set(metadata.outputs.map(\.name))
            for name in feature.outputs ?? [] where !outputNames.contains(name) {
                errors.append(
                    ManifestError(
                        feature.location.with(keyPath: "\(path).outputs"),
                        "model '\(feature.model)' has no output '\(name)' (outputs: \(outputNames.sorted().joined(separator: ", ")))"
                    ))
            }
            if case .defaultValue(let value) = feature.onFailure {
                let served = Set(feature.outputs ?? Array(outputNames))
                for key in value.keys.sorted() where !served.contains(key) {
                    errors.append(
                        ManifestError(
                            feature.location.with(keyPath: "\(path).on_failure.default.\(key)"),
                            "is not an output the feature returns"))
                }
            }
            if feature.pattern == .hybrid && feature.compose.isEmpty {
                errors.append(
                    ManifestError(
                        feature.location.with(keyPath: "\(path).compose"),
                        "pattern 'hybrid' composes inputs from other features' snapshots: give a compose section"))
            }
            errors += compositionProblems(feature, model: metadata, manifest: manifest, models: models)
            if let keys = feature.adviceKeys {
                let at = feature.location.with(keyPath: "\(path).advice.keys")
                let file = EntitySources.resolve(keys.source.path, manifestPath: manifest.path)
                do {
                    if case .csv = keys.source {
                        let header = try CSVEntityReader(path: file).header
                        if !header.contains(keys.keyColumn) {
                            errors.append(ManifestError(at, "\(file) has no column '\(keys.keyColumn)'"))
                        }
                    } else {
                        _ = try EntitySources.open(keys.source, manifestPath: manifest.path, skipping: 0)
                    }
                } catch {
                    errors.append(ManifestError(at, "\(error)"))
                }
            }
            if let batch = feature.batch {
                errors += batchProblems(batch, feature: feature, model: metadata, manifestPath: manifest.path)
            }
        }
        if let cycle = Composition.cycle(in: manifest.features), let first = manifest.features[cycle[0]] {
            errors.append(
                ManifestError(
                    first.location.with(keyPath: "features.\(cycle[0]).compose"),
                    "compositions form a cycle: \(cycle.joined(separator: " → "))"))
        }
        return errors
    }

    /// A compose section's problems: unknown features or outputs, sources without a snapshot, inputs the model
    /// lacks, and values whose type or per-row shape does not fit the input.
    static func compositionProblems(
        _ feature: FeatureSpec, model: ModelMetadata, manifest: Manifest, models: [String: ServingModel]
    ) -> [ManifestError] {
        var errors: [ManifestError] = []
        let path = "features.\(feature.name).compose"
        if !feature.compose.isEmpty, feature.batch != nil || feature.pattern == .batch {
            errors.append(
                ManifestError(
                    feature.location.with(keyPath: path),
                    "a batch feature reads its inputs from its source; compose applies to requests"))
        }
        for c in feature.compose {
            let at = c.location.with(keyPath: "\(path).\(c.input)")
            guard let input = model.inputs.first(where: { $0.name == c.input }) else {
                let names = model.inputs.map(\.name).joined(separator: ", ")
                errors.append(
                    ManifestError(at, "model '\(feature.model)' has no input '\(c.input)' (inputs: \(names))"))
                continue
            }
            if c.input == feature.key {
                errors.append(ManifestError(at, "is the feature's key; it cannot come from another feature"))
            }
            guard let source = manifest.features[c.feature] else {
                let names = manifest.features.keys.sorted().joined(separator: ", ")
                errors.append(
                    ManifestError(
                        at.with(keyPath: "\(at.keyPath).from"), "unknown feature '\(c.feature)' (features: \(names))"))
                continue
            }
            if source.batch == nil {
                errors.append(
                    ManifestError(
                        at.with(keyPath: "\(at.keyPath).from"),
                        "feature '\(c.feature)' has no batch section, so no snapshot to take '\(c.output)' from"))
            }
            if c.keyInput == nil && feature.key == nil {
                errors.append(
                    ManifestError(
                        at.with(keyPath: "\(at.keyPath).key"),
                        "the feature has no key: name the request input that holds the '\(c.feature)' key"))
            }
            guard let sourceModel = models[source.model] else { continue }
            if let served = source.outputs, !served.contains(c.output) {
                errors.append(
                    ManifestError(
                        at.with(keyPath: "\(at.keyPath).output"),
                        "feature '\(c.feature)' does not serve output '\(c.output)' (outputs: \(served.joined(separator: ", ")))"
                    ))
                continue
            }
            guard let output = sourceModel.metadata.outputs.first(where: { $0.name == c.output }) else {
                let names = sourceModel.metadata.outputs.map(\.name).joined(separator: ", ")
                errors.append(
                    ManifestError(
                        at.with(keyPath: "\(at.keyPath).output"),
                        "model '\(source.model)' of feature '\(c.feature)' has no output '\(c.output)' (outputs: \(names))"
                    ))
                continue
            }
            func describe(_ v: ModelMetadata.ValueInfo) -> String {
                let dims = (v.shape ?? []).dropFirst().map { $0 < 0 ? "?" : String($0) }
                return v.elementType.description + (dims.isEmpty ? "" : "[\(dims.joined(separator: ","))]")
            }
            let outDims = Array((output.shape ?? []).dropFirst())
            let inDims = Array((input.shape ?? []).dropFirst())
            let shapesFit =
                output.shape == nil || input.shape == nil
                || (outDims.count == inDims.count && zip(outDims, inDims).allSatisfy { $0 < 0 || $1 < 0 || $0 == $1 })
            var isMap = false
            if case .mapSequence = output.type { isMap = true }
            if output.elementType != input.elementType || !shapesFit || isMap {
                errors.append(
                    ManifestError(
                        at.with(keyPath: "\(at.keyPath).output"),
                        "'\(c.feature).\(c.output)' is \(describe(output)) per row, but input '\(c.input)' of model "
                            + "'\(feature.model)' is \(describe(input))"))
            }
        }
        return errors
    }

    /// A batch section's problems: columns for inputs the model lacks, a default cold start without a default,
    /// a source that cannot be opened, and (for CSV) mapped columns missing from the header.
    static func batchProblems(
        _ batch: BatchSpec, feature: FeatureSpec, model: ModelMetadata, manifestPath: String
    )
        -> [ManifestError]
    {
        var errors: [ManifestError] = []
        let path = "features.\(feature.name).batch"
        let inputNames = Set(model.inputs.map(\.name))
        for input in batch.columns.keys.sorted() where !inputNames.contains(input) {
            errors.append(
                ManifestError(
                    batch.location.with(keyPath: "\(path).columns.\(input)"),
                    "model '\(feature.model)' has no input '\(input)' (inputs: \(inputNames.sorted().joined(separator: ", ")))"
                ))
        }
        // A list of columns must fill the input's row exactly: the engine would refuse every row of the run
        // otherwise (the run then fails on its failed-row limit, but `freshline check` should say so first).
        for input in model.inputs {
            guard case .columns(let columns) = batch.columns[input.name], let width = rowWidth(input) else { continue }
            guard columns.count != width else { continue }
            let perRow = input.shape.map { "[" + $0.dropFirst().map(String.init).joined(separator: ",") + "]" } ?? ""
            errors.append(
                ManifestError(
                    batch.columnLocations[input.name] ?? batch.location.with(keyPath: "\(path).columns.\(input.name)"),
                    "input '\(input.name)' of model '\(feature.model)' takes \(width) value(s) per row (per-row shape "
                        + "\(perRow), input \(input.type)) but \(columns.count) column(s) are mapped: "
                        + columns.joined(separator: ", ")))
        }
        if batch.coldStart == .default, case .error = feature.onFailure {
            errors.append(
                ManifestError(
                    batch.location.with(keyPath: "\(path).cold_start"),
                    "is 'default' but the feature has no on_failure.default value"))
        }
        let file = EntitySources.resolve(batch.source.path, manifestPath: manifestPath)
        do {
            switch batch.source {
            case .csv:
                let header = try CSVEntityReader(path: file).header
                let mapper = EntityRowMapper(batch: batch, model: model)
                let missing = mapper.columns.filter { !header.contains($0) }
                if !missing.isEmpty {
                    errors.append(
                        ManifestError(
                            batch.location.with(keyPath: "\(path).source"),
                            "\(file) lacks the column(s) \(missing.joined(separator: ", ")) (header: \(header.prefix(12).joined(separator: ", "))\(header.count > 12 ? ", …" : ""))"
                        ))
                }
            case .jsonLines:
                _ = try JSONLinesEntityReader(path: file)
            case .sql(_, let query):
                _ = try SQLEntityReader(path: file, query: query, offset: 0)
            }
        } catch {
            errors.append(ManifestError(batch.location.with(keyPath: "\(path).source"), "\(error)"))
        }
        return errors
    }
}

extension ManifestValidator {
    /// How many values one row of `input` holds: the product of its declared dimensions after the first (the
    /// batch); `nil` when the shape is undeclared, has no batch dimension, or has another variable dimension.
    static func rowWidth(_ input: ModelMetadata.ValueInfo) -> Int? {
        guard let shape = input.shape, shape.count >= 1 else { return nil }
        let perRow = shape.dropFirst()
        guard perRow.allSatisfy({ $0 > 0 }) else { return nil }
        return perRow.reduce(1, *)
    }
}

extension SourceLocation {
    func with(keyPath: String) -> SourceLocation { SourceLocation(file: file, line: line, keyPath: keyPath) }
}
