import ArgumentParser

@main
struct Freshline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "freshline",
        abstract: "An inference server that serves each AI feature real-time, async, batch or hybrid.",
        subcommands: [ServeCommand.self, CheckCommand.self, ModelCommand.self]
    )
}
