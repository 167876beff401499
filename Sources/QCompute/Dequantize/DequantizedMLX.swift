import Foundation
import QFormats

/// An MLX-quantized model folder (mlx_lm's layout) whose packed linears read as floats.
///
/// mlx_lm stores each quantized Linear or Embedding `X` as `X.weight` (U32 words of codes, LSB
/// first within each little-endian word), `X.scales` and `X.biases` (one per `group_size` values
/// of a row), with the settings in config.json's `quantization` block and per-module overrides
/// under the module's path. Read through this, `X.weight` is `scales * code + biases` in the
/// scales' dtype, rounded after the product and after the sum as mlx's CPU kernel does, and the
/// companions are hidden. A folder whose config and tensors disagree is refused rather than
/// passed through, since the config would then describe tensors that are not there.
public final class DequantizedMLX: TensorSource, @unchecked Sendable {
  /// How one quantized weight is stored.
  public struct Layer: Sendable, Hashable {
    /// The module path `X` of `X.weight`.
    public var module: String
    public var bits: Int
    public var groupSize: Int
    /// The dequantized shape: the scales' leading dimensions, then the row length.
    public var shape: [Int]
    /// The scales' dtype, which the values are computed and returned in.
    public var dtype: DType
  }

  /// The code widths mlx's affine mode packs.
  public static let supportedBits: Set<Int> = [2, 3, 4, 5, 6, 8]

  public let base: any TensorSource
  /// The folder (or file) named in messages.
  public let location: String
  public let tensors: [TensorInfo]
  /// The quantized weights, by weight name (`X.weight`).
  public let layers: [String: Layer]
  public var metadata: [String: String] { base.metadata }

  /// Whether the source looks MLX-quantized: a `.scales` tensor beside a U32 `.weight`, or a
  /// config.json `quantization` block with `bits` and `group_size` that is not a qpack's.
  public static func isQuantized(_ source: any TensorSource, configData: Data?) -> Bool {
    if quantizationBlock(configData) != nil { return true }
    let dtypes = Dictionary(
      source.tensors.map { ($0.name, $0.dtype) }, uniquingKeysWith: { first, _ in first })
    return source.tensors.contains { info in
      info.name.hasSuffix(".scales")
        && dtypes[String(info.name.dropLast(".scales".count)) + ".weight"] == .u32
    }
  }

  /// Wraps `base`, checking every quantized weight against its companions and the config.
  /// - Parameters:
  ///   - base: the folder's tensors as stored.
  ///   - configData: the folder's config.json, whose `quantization` block gives bits and group size.
  ///   - location: the folder, for messages.
  /// - Throws: `DequantizeError.badMLXTensor` or `.badMLXConfig` naming the folder and tensor.
  public init(wrapping base: any TensorSource, configData: Data?, location: String)
    throws(DequantizeError)
  {
    self.base = base
    self.location = location
    let block = Self.quantizationBlock(configData)
    if let mode = block?["mode"] as? String, mode != "affine" {
      throw .badMLXConfig(
        location: location,
        reason: "mode '\(mode)' is not supported (only affine scales and biases are read)")
    }
    let byName = Dictionary(
      base.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    var found: [String: Layer] = [:]
    var hidden: Set<String> = []
    for scales in base.tensors where scales.name.hasSuffix(".scales") {
      let module = String(scales.name.dropLast(".scales".count))
      let weightName = module + ".weight"
      guard let weight = byName[weightName], weight.dtype == .u32 else {
        let what = byName[weightName].map { "is \($0.dtype.rawValue) \($0.shape)" } ?? "is missing"
        throw .badMLXTensor(
          location: location, tensor: weightName,
          reason: "\(what), but '\(scales.name)' beside it expects U32 packed codes")
      }
      guard let biases = byName[module + ".biases"] else {
        throw .badMLXTensor(
          location: location, tensor: weightName,
          reason: "has no '\(module).biases' (only affine quantization is read)")
      }
      guard biases.dtype == scales.dtype, biases.shape == scales.shape else {
        throw .badMLXTensor(
          location: location, tensor: weightName,
          reason:
            "has biases \(biases.dtype.rawValue) \(biases.shape) unlike its scales \(scales.dtype.rawValue) \(scales.shape)"
        )
      }
      guard scales.dtype.isFloatingPoint, scales.dtype.byteSize >= 2 else {
        throw .badMLXTensor(
          location: location, tensor: weightName,
          reason: "has scales of \(scales.dtype.rawValue), expected F16, BF16 or F32")
      }
      let (bits, groupSize) = try Self.settings(
        of: module, in: block, weight: weightName, location: location)
      guard Self.supportedBits.contains(bits), groupSize > 0 else {
        throw .badMLXTensor(
          location: location, tensor: weightName,
          reason:
            "has bits \(bits) and group size \(groupSize) in config.json, expected bits 2, 3, 4, 5, 6 or 8 and a positive group size"
        )
      }
      // Sizes come from the file and the config: checked, so a hostile one is refused, not a trap.
      let (columns, overflow) = (scales.shape.last ?? 0).multipliedReportingOverflow(by: groupSize)
      let (rowBits, bitsOverflow) = columns.multipliedReportingOverflow(by: bits)
      let (_, elementsOverflow) = scales.elementCount.multipliedReportingOverflow(by: groupSize)
      let fits = !overflow && !bitsOverflow && !elementsOverflow && rowBits % 32 == 0
      let expectedWeight = Array(scales.shape.dropLast()) + [fits ? rowBits / 32 : -1]
      guard scales.shape.count >= 2, fits, weight.shape == expectedWeight else {
        throw .badMLXTensor(
          location: location, tensor: weightName,
          reason:
            "is U32 \(weight.shape), but its scales \(scales.shape) at \(bits) bits and group size \(groupSize) (config.json) need U32 \(expectedWeight)"
        )
      }
      found[weightName] = Layer(
        module: module, bits: bits, groupSize: groupSize,
        shape: Array(scales.shape.dropLast()) + [columns],
        dtype: scales.dtype)
      hidden.insert(scales.name)
      hidden.insert(biases.name)
    }
    if found.isEmpty, let block {
      throw .badMLXConfig(
        location: location,
        reason:
          "in config.json (bits \(block["bits"] ?? "?"), group size \(block["group_size"] ?? "?")) describes packed weights, but no tensor has '.scales' and '.biases' beside a U32 weight"
      )
    }
    layers = found
    tensors = base.tensors.compactMap { info in
      if hidden.contains(info.name) { return nil }
      guard let layer = found[info.name] else { return info }
      return TensorInfo(name: info.name, dtype: layer.dtype, shape: layer.shape)
    }
  }

  /// The tensor's bytes: as stored, or a quantized weight dequantized into its scales' dtype.
  public func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws
    -> R
  {
    guard let layer = layers[name] else { return try base.withRawBytes(of: name, body) }
    let values = try dequantizedFloats(of: layer)
    let scratch = UnsafeMutableRawBufferPointer.allocate(
      byteCount: values.count * layer.dtype.byteSize, alignment: 16)
    defer { scratch.deallocate() }
    values.withUnsafeBufferPointer { DTypeConversion.narrow($0, to: layer.dtype, into: scratch) }
    return try body(UnsafeRawBufferPointer(scratch))
  }

  /// `scales * code + biases`, each step rounded to the layer's dtype, as Floats.
  public func dequantizedFloats(of layer: Layer) throws -> [Float] {
    let scales = try base.floats(of: layer.module + ".scales")
    let biases = try base.floats(of: layer.module + ".biases")
    let columns = layer.shape.last ?? 0
    let rows = columns > 0 ? layer.shape.reduce(1, *) / columns : 0
    let groups = columns / layer.groupSize
    let rowBytes = columns * layer.bits / 8
    let round: (Float) -> Float
    switch layer.dtype {
    case .f16: round = { Float(Float16($0)) }
    case .bf16:
      round = { DTypeConversion.float(fromBFloat16Bits: DTypeConversion.bfloat16Bits(from: $0)) }
    default: round = { $0 }
    }
    var out = [Float](repeating: 0, count: rows * columns)
    try base.withRawBytes(of: layer.module + ".weight") { words in
      guard words.count == rows * rowBytes else {
        throw DequantizeError.badMLXTensor(
          location: location, tensor: layer.module + ".weight",
          reason: "holds \(words.count) bytes, expected \(rows * rowBytes)")
      }
      var codes = [UInt8](repeating: 0, count: columns)
      out.withUnsafeMutableBufferPointer { values in
        codes.withUnsafeMutableBufferPointer { codes in
          for row in 0..<rows {
            // Words are little-endian, so a row's codes are one LSB-first stream of its bytes.
            BitPacking.unpackStream(
              UnsafeRawBufferPointer(rebasing: words[row * rowBytes..<(row + 1) * rowBytes]),
              bits: layer.bits,
              into: codes)
            for group in 0..<groups {
              let scale = scales[row * groups + group]
              let bias = biases[row * groups + group]
              for k in group * layer.groupSize..<(group + 1) * layer.groupSize {
                values[row * columns + k] = round(round(scale * Float(codes[k])) + bias)
              }
            }
          }
        }
      }
    }
    return out
  }

  /// config.json's MLX `quantization` block, or `nil` when there is none or it is a qpack's.
  static func quantizationBlock(_ configData: Data?) -> [String: Any]? {
    guard let configData,
      let config = try? JSONSerialization.jsonObject(with: configData) as? [String: Any],
      let block = config["quantization"] as? [String: Any],
      block["format"] as? String != "qpack",
      block["bits"] != nil || block["group_size"] != nil
    else { return nil }
    return block
  }

  /// Bits and group size for `module`: its own entry in the block, else the block's.
  private static func settings(
    of module: String, in block: [String: Any]?, weight: String, location: String
  )
    throws(DequantizeError) -> (Int, Int)
  {
    guard let block else {
      throw .badMLXTensor(
        location: location, tensor: weight,
        reason:
          "has scales and biases, but config.json has no 'quantization' block giving its bits and group size"
      )
    }
    var entry = block
    if let own = block[module] as? [String: Any] {
      entry = own
    } else if let own = block[module] as? Bool, !own {
      throw .badMLXTensor(
        location: location, tensor: weight,
        reason: "has scales and biases, but config.json marks '\(module)' as not quantized")
    }
    guard let bits = entry["bits"] as? Int, let groupSize = entry["group_size"] as? Int else {
      throw .badMLXTensor(
        location: location, tensor: weight,
        reason: "has no integer 'bits' and 'group_size' in config.json's 'quantization' block")
    }
    return (bits, groupSize)
  }
}
