import ArgumentParser
import QToolSupport

@main
struct QConvert: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "qconvert",
    abstract: "Convert FP16/BF16/FP32 checkpoints to packed low-bit checkpoints, and back.",
    version: "0.1.0")

  @Argument(help: "The checkpoint to convert: a model folder, safetensors file or HDF5 file.")
  var input: String

  @Option(name: .shortAndLong, help: "Where to write the converted checkpoint.")
  var output: String?

  func run() throws {
    exitNotYetSupported("qconvert", "conversion")
  }
}
