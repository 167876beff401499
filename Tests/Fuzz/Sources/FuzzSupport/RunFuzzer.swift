import CFuzzerDriver
import Foundation

/// Hands control to libFuzzer with `testOneInput` (the target's `LLVMFuzzerTestOneInput`).
///
/// libFuzzer parses the command line (`-runs=`, `-timeout=`, corpus folders) itself.
public func runFuzzer(_ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
  var argc = CommandLine.argc
  var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
  exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
}

/// Calls `body` with the fuzzer's input, or with an empty buffer when the pointer is null.
public func withFuzzInput(
  _ data: UnsafePointer<UInt8>?, _ size: Int, _ body: (UnsafePointer<UInt8>, Int) -> Int32
) -> Int32 {
  if let data { return body(data, size) }
  var empty: UInt8 = 0
  return body(&empty, 0)
}
