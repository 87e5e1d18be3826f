import ArgumentParser

@main
struct Freshline: AsyncParsableCommand {
    static func main() async {
        BLASCoreType.ensureFastKernels()
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
            ModelCommand.self, AdviseCommand.self, DemoCommand.self,
        ]
    )
}
