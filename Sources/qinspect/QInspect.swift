import ArgumentParser
import QToolSupport

@main
struct QInspect: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "qinspect",
    abstract: "Show what is inside a checkpoint or pack.",
    version: "0.1.0")

  @Argument(help: "Checkpoints to inspect; '-' reads a safetensors stream from stdin.")
  var paths: [String]

  func run() throws {
    exitNotYetSupported("qinspect", "inspection")
  }
}
