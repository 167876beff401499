import Foundation
import QFormats

/// Small files a user names (plots, mapping files): written beside the path and renamed into
/// place, replacing a regular file there but never an input, a folder or a special file.
public enum AtomicText {
  public static func write(_ data: Data, to path: String, inputs: [String]) throws {
    let output = try OutputDestination(path: path, kind: .file, replace: true, inputs: inputs)
    let file = try AtomicFile(output: output)
    do {
      try data.withUnsafeBytes { try file.write($0) }
      try file.commit()
    } catch {
      file.abandon()
      throw error
    }
  }
}
