import QCompute
import QFormats

/// The outcome of `qinspect --verify` on one checkpoint.
public struct PackVerification: Sendable {
  public var location: String
  /// Tensors that carried a checksum.
  public var checked: Int
  /// One message per tensor whose stored bytes do not match, naming it.
  public var mismatches: [String]

  /// Recomputes the checksums a qpack records; a plain checkpoint has none to check.
  public static func verify(_ checkpoint: Checkpoint) throws -> PackVerification {
    guard PackedCheckpoint.isPack(checkpoint.source) else {
      return PackVerification(location: checkpoint.location, checked: 0, mismatches: [])
    }
    let pack = try PackedCheckpoint(wrapping: checkpoint.source)
    let (checked, mismatches) = try pack.verifyChecksums()
    return PackVerification(location: checkpoint.location, checked: checked, mismatches: mismatches.map(\.description))
  }
}
