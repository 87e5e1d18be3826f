public import FreshlineCore
public import FreshlineEngine

extension BatchRunner {
    /// The first chunk (`batch.chunkRows` rows) of `batch`'s CSV source through the compute step of a run, with no
    /// store and no run: read and computed by the columnar path (`columnar`: cells parsed from the mapped bytes
    /// straight into the input tensors, `computeColumnar` in one pass) or by the general path (records of named
    /// fields, `compute`), run through `model`, its outputs packed as a run stores them. Returns how many rows got
    /// outputs and how many failed. For the benchmarks that guard these paths (Benchmarks/FastPathBenchmarks),
    /// which cannot see the internal types. Throws when the source is not CSV or cannot be read, or, for
    /// `columnar`, when the columnar path does not take the model's inputs.
    public static func computeCSVChunk(batch: BatchSpec, model: Model, columnar: Bool) throws -> (
        written: Int, failed: Int
    ) {
        guard case .csv(let path) = batch.source else {
            throw EntitySourceError(message: "computeCSVChunk reads a CSV source")
        }
        let reader = try CSVEntityReader(path: path)
        let mapper = EntityRowMapper(batch: batch, model: model)
        let part: ChunkPart
        if columnar {
            guard let plan = CSVColumnarPlan(mapper: mapper, header: reader.header) else {
                throw EntitySourceError(message: "\(path): the columnar path does not take the model's inputs")
            }
            let chunk = try reader.nextRaw(maxRows: batch.chunkRows)
            part = computeColumnar(
                chunk, range: 0..<chunk.rows, plan: plan, mapper: mapper, model: model, keys: nil, outputs: nil)
        } else {
            let records = try reader.next(maxRows: batch.chunkRows)
            part = compute(records, mapper: mapper, model: model, keys: nil, outputs: nil)
        }
        return (part.keys.count, part.failures.count)
    }
}
