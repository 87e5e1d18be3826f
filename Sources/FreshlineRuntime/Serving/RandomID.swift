/// Ids for runs, jobs and webhook deliveries: a prefix and 16 random hex digits (`run_5f0c2a9e81d34b07`).
enum RandomID {
    static func make(_ prefix: String) -> String {
        prefix + String(UInt64.random(in: 0...UInt64.max), radix: 16).leftPadded(to: 16)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
