import ArgumentParser
import FreshlineRuntime
import Logging

@main
struct Freshline: AsyncParsableCommand {
    static func main() async {
        BLASCoreType.ensureFastKernels()
        LoggingSystem.bootstrap(
            { label, provider in LineLogHandler(label: label, metadataProvider: provider) }, metadataProvider: nil)
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "freshline",
        abstract: "An inference server that serves each AI feature real-time, async, batch or hybrid.",
        subcommands: [
            ServeCommand.self, CheckCommand.self, RunCommand.self, BackfillCommand.self, WorkerCommand.self,
            ModelCommand.self, SnapshotCommand.self, AdviseCommand.self, LoadCommand.self, DemoCommand.self,
        ]
    )
}
