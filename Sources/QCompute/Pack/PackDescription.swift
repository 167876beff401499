import Foundation
import QFormats

/// One `qpack.tensor.<N>` entry: everything needed to dequantize tensor `N` from its companions.
public struct PackDescription: Sendable, Hashable, Codable {
  public var bits: Int
  public var groupSize: Int
  public var groupAxis: Int
  public var grid: PackGrid
  public var packing: String
  public var scaleDType: DType
  public var zero: PackZero
  public var zeroPoint: Int?
  public var dtype: DType
  public var shape: [Int]
  public var method: PackMethod
  public var compression: String
  public var scaleBits: Int?
  public var scaleGroupSize: Int?
  /// CRC-32C of the stored companion bytes (see `Formats/qpack.md`), `crc32c:0x` + 8 hex digits.
  public var checksum: String?

  enum CodingKeys: String, CodingKey {
    case bits
    case groupSize = "group_size"
    case groupAxis = "group_axis"
    case grid, packing
    case scaleDType = "scale_dtype"
    case zero
    case zeroPoint = "zero_point"
    case dtype, shape, method, compression
    case scaleBits = "scale_bits"
    case scaleGroupSize = "scale_group_size"
    case checksum
  }

  /// The `__metadata__` key prefix of tensor descriptions.
  public static let keyPrefix = "qpack.tensor."
  /// The `__metadata__` key and value of the format version.
  public static let versionKey = "qpack.version"
  public static let version = "1"
  /// The `__metadata__` key prefix of checksums of tensors stored as they are.
  public static let checksumKeyPrefix = "qpack.checksum."

  /// Whether `.qweight` holds a zstd frame.
  public var isCompressed: Bool { compression == "zstd" }

  /// Rows `O` and columns `I` of the flattened weight.
  public var rows: Int { shape.first ?? 0 }
  public var columns: Int { shape.dropFirst().reduce(1, *) }
  public var groupsPerRow: Int { groupSize == 0 ? 0 : columns / groupSize }

  /// The description as a compact JSON document with sorted keys.
  public func jsonString() -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    guard let data = try? encoder.encode(self) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
  }

  /// Parses a description, checking the fields version 1 fixes.
  public init(json: String, location: String, tensor: String) throws(PackError) {
    let decoded: PackDescription
    do {
      decoded = try JSONDecoder().decode(PackDescription.self, from: Data(json.utf8))
    } catch {
      throw .invalidDescription(location: location, tensor: tensor, reason: "is not valid: \(error)")
    }
    self = decoded
    func fail(_ reason: String) -> PackError {
      .invalidDescription(location: location, tensor: tensor, reason: reason)
    }
    guard BitPacking.supportedBits.contains(bits) else { throw fail("has bits \(bits)") }
    guard groupAxis == 1 else { throw fail("has group_axis \(groupAxis)") }
    guard packing == "lsb" else { throw fail("has packing '\(packing)'") }
    guard compression == "none" || compression == "zstd" else { throw fail("has compression '\(compression)'") }
    if let checksum {
      guard checksum.hasPrefix("crc32c:0x"), checksum.count == CRC32C.placeholder.count,
        UInt32(checksum.dropFirst("crc32c:0x".count), radix: 16) != nil
      else { throw fail("has checksum '\(checksum)', not crc32c:0x and 8 hex digits") }
    }
    guard shape.count >= 2, shape.allSatisfy({ $0 >= 0 }) else { throw fail("has shape \(shape)") }
    var count = 1
    for dimension in shape {
      let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
      guard !overflow else { throw fail("has shape \(shape), which overflows") }
      count = product
    }
    guard groupSize > 0, columns % groupSize == 0 else {
      throw fail("has group_size \(groupSize), which does not divide \(columns)")
    }
    guard dtype.isFloatingPoint else { throw fail("has dtype '\(dtype.rawValue)'") }
    guard [.f16, .bf16, .f32].contains(scaleDType) else {
      throw fail("has scale_dtype '\(scaleDType.rawValue)'")
    }
    switch (grid, zero) {
    case (.affine, .bias), (.affine, .int), (.affine, .float): break
    case (.symmetric, .fixed):
      guard zeroPoint != nil else { throw fail("has zero 'fixed' without zero_point") }
    case (.bilevel, .int):
      guard scaleBits == 4, let chunk = scaleGroupSize, chunk > 0,
        (rows * groupsPerRow) % chunk == 0
      else { throw fail("has scale_bits or scale_group_size that do not fit") }
    default: throw fail("has grid '\(grid.rawValue)' with zero '\(zero.rawValue)'")
    }
  }

  /// The description of `info` packed with `spec`; throws when the spec cannot apply.
  public init(for info: TensorInfo, spec: PackSpec, location: String) throws(PackError) {
    func fail(_ reason: String) -> PackError {
      .cannotPack(location: location, tensor: info.name, reason: reason)
    }
    guard info.dtype.isFloatingPoint else { throw fail("dtype \(info.dtype.rawValue) is not floating point") }
    guard let (rows, columns) = packMatrixShape(info.shape) else {
      throw fail("it has \(info.shape.count) dimensions, not 2 or more")
    }
    guard BitPacking.supportedBits.contains(spec.bits) else { throw fail("\(spec.bits)-bit codes are not supported") }
    if case .elements(let size) = spec.groupSize, ![16, 32, 64, 128].contains(size) {
      throw fail("group size \(size) is not one of 16, 32, 64, 128")
    }
    let group = spec.groupSize.length(columns: columns)
    guard group > 0, columns % group == 0 else {
      throw fail("input dimension \(columns) is not a multiple of the group size \(group)")
    }
    guard [.f16, .bf16, .f32].contains(spec.scaleDType) else {
      throw fail("scale dtype \(spec.scaleDType.rawValue) is not F16, BF16 or F32")
    }
    switch (spec.grid, spec.method) {
    case (.affine, .rtn), (.affine, .clip), (.affine, .hqq), (.symmetric, .rtn), (.bilevel, .speedq),
      (.affine, .gptq), (.symmetric, .gptq), (.bilevel, .gptq), (.affine, .adaround):
      break
    default:
      throw fail("method '\(spec.method.rawValue)' does not make a '\(spec.grid.rawValue)' grid")
    }
    if spec.grid == .bilevel {
      guard spec.scaleGroupSize > 0, (rows * (columns / group)) % spec.scaleGroupSize == 0 else {
        throw fail(
          "its \(rows * (columns / group)) group scales do not split into second-level groups of \(spec.scaleGroupSize)")
      }
    }
    bits = spec.bits
    groupSize = group
    groupAxis = 1
    grid = spec.grid
    packing = "lsb"
    scaleDType = spec.scaleDType
    zero = spec.zero
    zeroPoint = spec.grid == .symmetric ? spec.zeroPoint : nil
    dtype = info.dtype
    shape = info.shape
    method = spec.method
    compression = "none"
    checksum = nil
    scaleBits = spec.grid == .bilevel ? 4 : nil
    scaleGroupSize = spec.grid == .bilevel ? spec.scaleGroupSize : nil
  }

  /// The companion tensors of `name`, in the order a qpack writer stores them.
  public func companions(of name: String) -> [TensorInfo] {
    let groups = rows * groupsPerRow
    var out: [TensorInfo] = []
    switch zero {
    case .bias:
      out.append(TensorInfo(name: name + ".scales", dtype: scaleDType, shape: [rows, groupsPerRow]))
      out.append(TensorInfo(name: name + ".biases", dtype: scaleDType, shape: [rows, groupsPerRow]))
    case .float:
      out.append(TensorInfo(name: name + ".scales", dtype: scaleDType, shape: [rows, groupsPerRow]))
      out.append(TensorInfo(name: name + ".zeros", dtype: scaleDType, shape: [rows, groupsPerRow]))
    case .fixed:
      out.append(TensorInfo(name: name + ".scales", dtype: scaleDType, shape: [rows, groupsPerRow]))
    case .int:
      if grid == .bilevel {
        let chunks = groups / max(scaleGroupSize ?? 1, 1)
        out.append(TensorInfo(name: name + ".scale_step", dtype: .f32, shape: [chunks]))
        out.append(TensorInfo(name: name + ".scale_zero", dtype: .f32, shape: [chunks]))
      } else {
        out.append(TensorInfo(name: name + ".scales", dtype: scaleDType, shape: [rows, groupsPerRow]))
      }
    }
    out.append(
      TensorInfo(name: name + ".qweight", dtype: .u8, shape: [rows, BitPacking.byteCount(codes: columns, bits: bits)]))
    if zero == .int {
      out.append(
        TensorInfo(name: name + ".qzeros", dtype: .u8, shape: [rows, BitPacking.byteCount(codes: groupsPerRow, bits: bits)]))
    }
    if grid == .bilevel {
      out.append(TensorInfo(name: name + ".qscales", dtype: .u8, shape: [BitPacking.byteCount(codes: groups, bits: 4)]))
    }
    return out
  }

  /// 8 x companion bytes / original elements.
  public func bitsPerWeight(name: String) -> Double {
    let elements = shape.reduce(1, *)
    guard elements > 0 else { return 0 }
    return 8 * Double(companions(of: name).reduce(0) { $0 + $1.byteCount }) / Double(elements)
  }
}
