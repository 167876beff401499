import ArgumentParser
#if canImport(Glibc)
  import Glibc
#endif

/// Prints why a tool cannot run yet and exits with status 2.
///
/// Tools whose capability has not landed say so plainly instead of printing made-up output.
public func exitNotYetSupported(_ tool: String, _ what: String) -> Never {
  var stderr = StandardError()
  print("\(tool): \(what) is not yet supported", to: &stderr)
  exit(2)
}

/// A `TextOutputStream` over the standard error stream, for diagnostics.
public struct StandardError: TextOutputStream {
  public init() {}
  public mutating func write(_ string: String) {
    FileHandleOutput.writeStderr(string)
  }
}

/// A `TextOutputStream` over the standard output stream, for data.
public struct StandardOutput: TextOutputStream {
  public init() {}
  public mutating func write(_ string: String) {
    FileHandleOutput.write(string, to: 1)
  }
}
