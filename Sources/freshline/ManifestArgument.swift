import ArgumentParser
import Foundation

/// The manifest a command works on. One convention for every command: the manifest is a positional argument, after
/// the command's own (`serve FILE`, `check FILE`, `worker FILE`, `advise [FILE]`, `run FEATURE [FILE]`,
/// `backfill FEATURE [FILE]`); where it may be left out, it is `$FRESHLINE_MANIFEST`, else `freshline.yaml`.
/// `run` and `backfill` still take the earlier `-m/--manifest FILE`, with a notice on standard error.
enum ManifestArgument {
    /// The path to load: the positional argument, else the deprecated option (noticed on standard error), else
    /// `$FRESHLINE_MANIFEST`, else `freshline.yaml`.
    ///
    /// - Parameter usage: the command line that replaces the option, for the notice (`freshline run churn FILE`).
    static func path(_ positional: String?, deprecatedOption: String?, usage: (String) -> String) -> String {
        if let positional { return positional }
        if let deprecatedOption {
            FileHandle.standardError.write(
                Data(
                    "notice: -m/--manifest is deprecated; give the manifest after the feature: \(usage(deprecatedOption))\n"
                        .utf8))
            return deprecatedOption
        }
        return ProcessInfo.processInfo.environment["FRESHLINE_MANIFEST"] ?? "freshline.yaml"
    }

    /// Refuses a manifest given both ways.
    static func validate(_ positional: String?, deprecatedOption: String?) throws {
        if let positional, let deprecatedOption {
            throw ValidationError(
                "the manifest is given twice ('\(positional)' and -m '\(deprecatedOption)'): give it once, after the feature"
            )
        }
    }
}
