import Foundation

/// Where and why bytes are not valid JSON, for messages about side files (tokenizer.json,
/// configs) that Foundation's reader only calls "not in the correct format".
///
/// Found with the same strict parser that reads safetensors headers. A file that ends before
/// its value is complete is called truncated, the usual fate of an interrupted download.
public struct JSONSyntaxProblem: Error, Sendable, Equatable, CustomStringConvertible {
  /// The byte offset of the problem, and its 1-based line and column.
  public var offset: Int
  public var line: Int
  public var column: Int
  public var reason: String
  /// The bytes end before the JSON value does.
  public var truncated: Bool
  public var byteCount: Int

  /// A phrase completing "FILE: …".
  public var description: String {
    truncated
      ? "is truncated: its JSON ends after \(byteCount) bytes (line \(line)), before the value is complete"
      : "is not valid JSON at line \(line), column \(column) (byte \(offset)): \(reason)"
  }

  /// The first syntax error in `data`, or `nil` when it is valid JSON.
  public static func find(in data: Data) -> JSONSyntaxProblem? {
    data.withUnsafeBytes { bytes in
      do throws(HeaderJSONError) {
        _ = try HeaderJSONParser.parse(bytes)
        return nil
      } catch {
        return JSONSyntaxProblem(error, in: bytes)
      }
    }
  }
}

extension JSONSyntaxProblem {
  /// The problem a parser error names, with its line and column in `bytes`.
  init(_ error: HeaderJSONError, in bytes: UnsafeRawBufferPointer) {
    let offset = min(error.offset, bytes.count)
    var line = 1
    var lineStart = 0
    for (index, byte) in bytes[0..<offset].enumerated() where byte == 0x0A {
      line += 1
      lineStart = index + 1
    }
    let reason: String
    switch error.kind {
    case .syntax(let text): reason = text.replacingOccurrences(of: "end of the header", with: "end of the file")
    case .duplicateKey(let key): reason = "the key '\(key)' appears more than once"
    }
    self.init(
      offset: offset, line: line, column: offset - lineStart + 1, reason: reason,
      truncated: offset >= bytes.count, byteCount: bytes.count)
  }
}
