import ArgumentParser
import QToolSupport

@main
struct LoraRebase: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "lora-rebase",
    abstract: "Move a LoRA adapter trained on one base model onto a new base model.",
    version: "0.1.0")

  @Argument(help: "The base model the adapter was trained on.")
  var oldBase: String

  @Argument(help: "The new base model.")
  var newBase: String

  @Argument(help: "The PEFT adapter folder.")
  var adapter: String

  @Option(name: .shortAndLong, help: "Where to write the moved adapter.")
  var output: String?

  func run() throws {
    exitNotYetSupported("lora-rebase", "moving an adapter")
  }
}
