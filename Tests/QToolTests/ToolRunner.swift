import Foundation
import QToolSupport
import Testing

/// The result of running one of the built tools.
struct ToolRun {
  var status: Int32
  var stdout: String
  var stderr: String
}

/// Runs a built executable from the products directory with the given arguments.
func runTool(_ tool: String, _ arguments: [String], stdin: Data? = nil) throws -> ToolRun {
  let process = Process()
  process.executableURL = productsDirectory.appendingPathComponent(tool)
  process.environment = toolEnvironment
  process.arguments = arguments
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = err
  let input = Pipe()
  process.standardInput = input
  try process.run()
  if let stdin { try input.fileHandleForWriting.write(contentsOf: stdin) }
  try input.fileHandleForWriting.close()
  let outData = out.fileHandleForReading.readDataToEndOfFile()
  let errData = err.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return ToolRun(
    status: process.terminationStatus,
    stdout: String(decoding: outData, as: UTF8.self),
    stderr: String(decoding: errData, as: UTF8.self))
}

/// Under Swift Testing on Linux the bundle is the build products directory.
let productsDirectory = Bundle.main.bundleURL

/// The environment the tools run in: this process's, with OpenBLAS pinned to the kernels it runs
/// here (`OPENBLAS_CORETYPE`). A tool would otherwise choose better ones on a CPU its OpenBLAS
/// does not know (`BLASKernelChoice`), and the numbers tests compare with their own
/// computations must come from the same kernels.
let toolEnvironment: [String: String] = {
  var environment = ProcessInfo.processInfo.environment
  if environment["OPENBLAS_CORETYPE"] == nil, let core = BLASKernelChoice.currentCore {
    environment["OPENBLAS_CORETYPE"] = core
  }
  return environment
}()

/// The repository's `Fixtures` folder, found from this file's path.
let fixturesDirectory = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  .appendingPathComponent("Fixtures")
