import Foundation
import QFormats

/// A qpack seen as the checkpoint it was made from: the original tensors, dequantized on read.
///
/// Companion tensors are hidden; each packed tensor appears once, with its original dtype and
/// shape, where its first companion was. Tensors that were not packed pass through.
public final class PackedCheckpoint: TensorSource, @unchecked Sendable {
  public let base: any TensorSource
  public let location: String
  public let tensors: [TensorInfo]
  public let metadata: [String: String]
  /// The description of every packed tensor, by original name.
  public let packDescriptions: [String: PackDescription]
  /// The bytes each packed tensor's companions occupy in the file (compressed where they are).
  public let storedByteCounts: [String: Int]
  /// Tensors whose recorded checksum matched when their bytes were first read.
  private var verified: Set<String> = []
  private let verifiedLock = NSLock()

  /// Whether a source's metadata marks it as a qpack.
  public static func isPack(_ source: any TensorSource) -> Bool {
    source.metadata[PackDescription.versionKey] != nil
  }

  /// Wraps a source whose `__metadata__` has `qpack.version`.
  ///
  /// - Throws: `PackError.unsupportedVersion` for a version other than 1, `.invalidDescription`
  ///   for a malformed description, `.badCompanion` for a missing or misshapen companion.
  public init(wrapping base: any TensorSource) throws(PackError) {
    self.base = base
    location = base.location
    metadata = base.metadata
    let version = base.metadata[PackDescription.versionKey] ?? "none"
    guard version == PackDescription.version else {
      throw .unsupportedVersion(location: base.location, version: version)
    }
    var descriptions: [String: PackDescription] = [:]
    for (key, value) in base.metadata where key.hasPrefix(PackDescription.keyPrefix) {
      let name = String(key.dropFirst(PackDescription.keyPrefix.count))
      descriptions[name] = try PackDescription(json: value, location: base.location, tensor: name)
    }
    let byName = Dictionary(base.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    var owner: [String: String] = [:]
    var sizes: [String: Int] = [:]
    for (name, description) in descriptions {
      if byName[name] != nil {
        throw .badCompanion(location: base.location, tensor: name, reason: "is both described as packed and stored as is")
      }
      for companion in description.companions(of: name) {
        guard let stored = byName[companion.name] else {
          throw .badCompanion(location: base.location, tensor: name, reason: "has no companion '\(companion.name)'")
        }
        let compressedWeight = description.isCompressed && companion.name == name + ".qweight"
        let fits =
          compressedWeight
          ? stored.dtype == .u8 && stored.shape.count == 1
          : stored.dtype == companion.dtype && stored.shape == companion.shape
        guard fits else {
          throw .badCompanion(
            location: base.location, tensor: name,
            reason: "has companion '\(companion.name)' of \(stored.dtype.rawValue) \(stored.shape), expected \(compressedWeight ? "U8 [n]" : "\(companion.dtype.rawValue) \(companion.shape)")")
        }
        owner[companion.name] = name
        sizes[name, default: 0] += stored.byteCount
      }
    }
    var listed: [TensorInfo] = []
    var seen: Set<String> = []
    for info in base.tensors {
      if let name = owner[info.name] {
        if seen.insert(name).inserted, let description = descriptions[name] {
          listed.append(TensorInfo(name: name, dtype: description.dtype, shape: description.shape))
        }
      } else {
        listed.append(info)
      }
    }
    tensors = listed
    packDescriptions = descriptions
    storedByteCounts = sizes
  }

  /// Recomputes every recorded checksum from the stored bytes.
  ///
  /// Packed tensors are checked against their description's `checksum`, tensors stored as they
  /// are against `qpack.checksum.<N>`.
  /// - Returns: how many tensors had a checksum, and one `.checksumMismatch` per tensor whose
  ///   bytes differ, in tensor order.
  public func verifyChecksums() throws -> (checked: Int, mismatches: [PackError]) {
    var checked = 0
    var mismatches: [PackError] = []
    for info in tensors {
      let expected: String
      let parts: [String]
      if let description = packDescriptions[info.name] {
        guard let checksum = description.checksum else { continue }
        expected = checksum
        parts = description.companions(of: info.name).map(\.name)
      } else {
        guard let checksum = metadata[PackDescription.checksumKeyPrefix + info.name] else { continue }
        expected = checksum
        parts = [info.name]
      }
      var crc: UInt32 = 0
      for part in parts {
        crc = try base.withRawBytes(of: part) { CRC32C.checksum($0, continuing: crc) }
      }
      checked += 1
      let actual = CRC32C.formatted(crc)
      if actual != expected.lowercased() {
        mismatches.append(.checksumMismatch(location: location, tensor: info.name, expected: expected, actual: actual))
      }
    }
    return (checked, mismatches)
  }

  /// The checksum recorded for tensor `name` (its description's, or `qpack.checksum.<N>` for a
  /// tensor stored as it is), unless it was already verified in this process.
  private func unverifiedChecksum(of name: String) -> String? {
    let recorded = packDescriptions[name].map(\.checksum) ?? metadata[PackDescription.checksumKeyPrefix + name]
    guard let recorded else { return nil }
    verifiedLock.lock()
    defer { verifiedLock.unlock() }
    return verified.contains(name) ? nil : recorded
  }

  /// Compares a tensor's computed checksum with the recorded one, remembering a match.
  ///
  /// - Throws: `PackError.checksumMismatch` naming the file and the tensor.
  private func settle(_ name: String, crc: UInt32, expected: String) throws(PackError) {
    let actual = CRC32C.formatted(crc)
    guard actual == expected.lowercased() else {
      throw .checksumMismatch(location: location, tensor: name, expected: expected, actual: actual)
    }
    verifiedLock.lock()
    verified.insert(name)
    verifiedLock.unlock()
  }

  /// Checks tensor `name`'s stored bytes against its recorded checksum, once per process; every
  /// read through this type does so before the bytes are decoded, so a flipped byte is an error
  /// naming the file and tensor rather than a silently wrong value.
  ///
  /// - Throws: `PackError.checksumMismatch`, or what reading the bytes throws.
  public func verifyChecksum(of name: String) throws {
    guard let expected = unverifiedChecksum(of: name) else { return }
    let parts = packDescriptions[name].map { $0.companions(of: name).map(\.name) } ?? [name]
    var crc: UInt32 = 0
    for part in parts {
      crc = try base.withRawBytes(of: part) { CRC32C.checksum($0, continuing: crc) }
    }
    try settle(name, crc: crc, expected: expected)
  }

  /// The original tensor's values as float32, dequantized when it is packed; the stored bytes
  /// are checked against the recorded checksum first (see `verifyChecksum(of:)`).
  public func dequantizedFloats(of name: String) throws -> [Float] {
    guard let description = packDescriptions[name] else { return try floats(of: name) }
    let expected = unverifiedChecksum(of: name)
    var crc: UInt32 = 0
    var companions: [String: (info: TensorInfo, bytes: [UInt8])] = [:]
    for companion in description.companions(of: name) {
      guard let info = base.info(named: companion.name) else { continue }
      let bytes = try base.withRawBytes(of: companion.name) { [UInt8]($0) }
      if expected != nil { crc = CRC32C.checksum(bytes, continuing: crc) }
      companions[companion.name] = (info, bytes)
    }
    if let expected { try settle(name, crc: crc, expected: expected) }
    return try PackDecoder.dequantize(name: name, description: description, location: location) { companions[$0] }
  }

  public func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
    guard let description = packDescriptions[name] else {
      guard let expected = unverifiedChecksum(of: name) else { return try base.withRawBytes(of: name, body) }
      return try base.withRawBytes(of: name) { raw in
        try settle(name, crc: CRC32C.checksum(raw), expected: expected)
        return try body(raw)
      }
    }
    let values = try dequantizedFloats(of: name)
    if description.dtype == .f32 {
      return try values.withUnsafeBytes(body)
    }
    let scratch = UnsafeMutableRawBufferPointer.allocate(
      byteCount: values.count * description.dtype.byteSize, alignment: 16)
    defer { scratch.deallocate() }
    values.withUnsafeBufferPointer { DTypeConversion.narrow($0, to: description.dtype, into: scratch) }
    return try body(UnsafeRawBufferPointer(scratch))
  }
}
