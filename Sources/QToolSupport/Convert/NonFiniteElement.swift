import QCompute
import QFormats

/// The first NaN or infinity found in a tensor, located so it can be looked up: coordinates in
/// the tensor's shape and the row-major position a flat view (numpy's `ravel`) gives it.
public struct NonFiniteElement: Sendable, Equatable, CustomStringConvertible {
  public var location: String
  public var tensor: String
  public var index: [Int]
  public var flatIndex: Int
  public var value: Float

  public init(location: String, tensor: String, index: [Int], shape: [Int], value: Float) {
    self.location = location
    self.tensor = tensor
    self.index = index
    var flat = 0
    for (coordinate, extent) in zip(index, shape) { flat = flat * extent + coordinate }
    flatIndex = flat
    self.value = value
  }

  /// The same error-style line for a refusal and for a warning.
  public var description: String {
    "\(location): tensor '\(tensor)' holds \(value) at index \(index) (flat index \(flatIndex))"
  }

  /// The first non-finite element of a floating-point tensor of `source`, read a block of rows at
  /// a time (`blockElements` floats), or `nil` when all are finite or the tensor is not floats.
  static func first(in info: TensorInfo, of source: any TensorSource, blockElements: Int) throws -> NonFiniteElement? {
    guard info.dtype.isFloatingPoint, info.elementCount > 0 else { return nil }
    let rowLength = max(info.shape.dropFirst().reduce(1, *), 1)
    let rows = info.elementCount / rowLength
    let rowsPerBlock = max(1, blockElements / rowLength)
    let elementSize = info.dtype.byteSize
    var block = [Float](repeating: 0, count: min(rows, rowsPerBlock) * rowLength)
    for firstRow in stride(from: 0, to: rows, by: rowsPerBlock) {
      let blockRows = min(rowsPerBlock, rows - firstRow)
      let count = blockRows * rowLength
      let byteRange = (firstRow * rowLength * elementSize)..<((firstRow + blockRows) * rowLength * elementSize)
      try source.withRawBytes(of: info.name) { raw in
        guard raw.count == info.byteCount else {
          throw PackError.cannotPack(
            location: source.location, tensor: info.name, reason: "it holds \(raw.count) bytes, not \(info.byteCount)")
        }
        block.withUnsafeMutableBufferPointer { buffer in
          DTypeConversion.widen(
            UnsafeRawBufferPointer(rebasing: raw[byteRange]), from: info.dtype,
            into: UnsafeMutableBufferPointer(rebasing: buffer[0..<count]))
        }
      }
      ConvertJob.releasePages(of: info.name, byteRange: byteRange, in: source)
      let blockShape = [blockRows] + (info.shape.isEmpty ? [] : info.shape.dropFirst())
      let found = block.withUnsafeBufferPointer { buffer in
        PackEncoder.firstNonFinite(UnsafeBufferPointer(rebasing: buffer[0..<count]), shape: info.shape.isEmpty ? [] : blockShape)
      }
      if let (index, value) = found {
        let shifted = index.isEmpty ? index : [index[0] + firstRow] + index.dropFirst()
        return NonFiniteElement(location: source.location, tensor: info.name, index: shifted, shape: info.shape, value: value)
      }
    }
    return nil
  }
}

extension NonFiniteElement {
  /// The first NaN or infinity of every floating-point tensor of `source` that has one, in name
  /// order; the runtime layouts check a whole checkpoint this way before writing anything.
  public static func all(in source: any TensorSource) throws -> [NonFiniteElement] {
    try source.tensors.sorted { $0.name < $1.name }.compactMap { info in
      try first(in: info, of: source, blockElements: 1 << 20)
    }
  }
}
