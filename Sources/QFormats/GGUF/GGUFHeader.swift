/// The parsed and validated header of a GGUF file: everything before the data section.
struct GGUFHeader {
  var version: UInt32
  var keyValues: [(key: String, value: GGUFValue)]
  var alignment: Int
  var dataStart: Int
  var tensors: [GGUFTensorInfo]

  /// Bytes a metadata entry needs at least: key length, value type, one value byte.
  static let minimumEntrySize = 8 + 4 + 1
  /// Bytes a tensor info needs at least: name length, n_dims, type, offset.
  static let minimumTensorInfoSize = 8 + 4 + 4 + 8
  static let maximumDimensions = 4

  init(bytes: UnsafeRawBufferPointer, path: String) throws {
    var cursor = GGUFCursor(bytes: bytes, path: path)
    let magic = try cursor.take(4, .header)
    guard magic.elementsEqual(GGUFFile.magic) else {
      let hex = magic.map { String($0, radix: 16) }.joined(separator: " ")
      throw GGUFError.badHeader(path: path, defect: "bad magic [\(hex)], not a GGUF file")
    }
    version = try cursor.u32(.header)
    guard version == 2 || version == 3 else {
      if (1...3).contains(version.byteSwapped) {
        throw GGUFError.badHeader(
          path: path, defect: "is a big-endian GGUF file, only little-endian files are supported")
      }
      throw GGUFError.badHeader(
        path: path, defect: "has unsupported GGUF version \(version) (2 and 3 are supported)")
    }
    let tensorCount = try cursor.u64(.header)
    let entryCount = try cursor.u64(.header)
    let left = UInt64(cursor.remaining)
    guard entryCount <= left / UInt64(Self.minimumEntrySize) else {
      throw GGUFError.badHeader(
        path: path,
        defect:
          "declares \(entryCount) metadata entries, more than the \(left) bytes after the header can hold"
      )
    }
    guard
      tensorCount <= (left - entryCount * UInt64(Self.minimumEntrySize))
        / UInt64(Self.minimumTensorInfoSize)
    else {
      throw GGUFError.badHeader(
        path: path,
        defect:
          "declares \(tensorCount) tensors, more than the \(left) bytes after the header can hold")
    }

    var keyValues: [(key: String, value: GGUFValue)] = []
    keyValues.reserveCapacity(Int(entryCount))
    var seenKeys: Set<String> = []
    for index in 0..<Int(entryCount) {
      let key = try cursor.strictString(.keyName(index: index))
      guard seenKeys.insert(key).inserted else {
        throw GGUFError.badKey(path: path, key: key, defect: "appears twice")
      }
      let type = try cursor.valueType(.key(key))
      keyValues.append((key, try cursor.value(of: type, .key(key))))
    }
    self.keyValues = keyValues

    alignment = GGUFFile.defaultAlignment
    if let entry = keyValues.first(where: { $0.key == GGUFFile.alignmentKey }) {
      guard case .uint32(let value) = entry.value, value > 0, value & (value - 1) == 0 else {
        throw GGUFError.badKey(
          path: path, key: entry.key,
          defect: "must be a u32 power of 2, found \(entry.value.type.name) \(entry.value.rendered)"
        )
      }
      alignment = Int(value)
    }

    var tensors: [GGUFTensorInfo] = []
    tensors.reserveCapacity(Int(tensorCount))
    var seenNames: Set<String> = []
    for index in 0..<Int(tensorCount) {
      let name = try cursor.strictString(.tensorName(index: index))
      let context = GGUFContext.tensor(name)
      guard seenNames.insert(name).inserted else {
        throw GGUFError.badTensor(path: path, tensor: name, defect: "appears twice")
      }
      let dimensionCount = try cursor.u32(context)
      guard dimensionCount <= Self.maximumDimensions else {
        throw GGUFError.badTensor(
          path: path, tensor: name,
          defect: "has n_dims \(dimensionCount), more than \(Self.maximumDimensions)")
      }
      var ne: [Int] = []
      for _ in 0..<Int(dimensionCount) {
        let raw = try cursor.u64(context)
        guard raw <= UInt64(Int64.max) else {
          throw GGUFError.badTensor(
            path: path, tensor: name, defect: "has dimension \(raw), too large")
        }
        ne.append(Int(raw))
      }
      let rawType = try cursor.u32(context)
      guard let type = GGMLType(rawValue: rawType) else {
        throw GGUFError.badTensor(
          path: path, tensor: name, defect: "has unknown ggml type \(rawType)")
      }
      let shape = Array(ne.reversed())
      guard let byteCount = type.byteCount(shape: shape) else {
        if let rowLength = ne.first, rowLength % type.blockSize != 0 {
          throw GGUFError.badTensor(
            path: path, tensor: name,
            defect:
              "has row length \(rowLength), not a multiple of the \(type.name) block size \(type.blockSize)"
          )
        }
        throw GGUFError.badTensor(
          path: path, tensor: name, defect: "has dimensions \(ne) whose size overflows")
      }
      let rawOffset = try cursor.u64(context)
      guard rawOffset % UInt64(alignment) == 0 else {
        throw GGUFError.badTensor(
          path: path, tensor: name, defect: "has offset \(rawOffset), not aligned to \(alignment)")
      }
      guard rawOffset <= UInt64(bytes.count) else {
        throw GGUFError.badTensor(
          path: path, tensor: name,
          defect: "has offset \(rawOffset) past the end of the file (file size \(bytes.count))")
      }
      tensors.append(
        GGUFTensorInfo(
          name: name, type: type, shape: shape, byteCount: byteCount, offset: Int(rawOffset)))
    }

    // The data section starts at the next multiple of the alignment; a file without tensors
    // may end before it.
    let (padded, overflow) = cursor.offset.addingReportingOverflow(alignment - 1)
    guard !overflow else { throw GGUFError.badHeader(path: path, defect: "header size overflows") }
    dataStart = padded / alignment * alignment

    for tensor in tensors {
      let (start, overflowStart) = dataStart.addingReportingOverflow(tensor.offset)
      let (end, overflowEnd) = start.addingReportingOverflow(tensor.byteCount)
      guard !overflowStart, !overflowEnd, end <= bytes.count else {
        throw GGUFError.badTensor(
          path: path, tensor: tensor.name,
          defect:
            "has data at offset \(tensor.offset) + \(tensor.byteCount) bytes past the end of the file "
            + "(data section starts at \(dataStart), file size \(bytes.count))")
      }
    }
    let byOffset = tensors.filter { $0.byteCount > 0 }.sorted { $0.offset < $1.offset }
    for (previous, next) in zip(byOffset, byOffset.dropFirst())
    where next.offset < previous.offset + previous.byteCount {
      throw GGUFError.badTensor(
        path: path, tensor: next.name,
        defect: "has data at offset \(next.offset) overlapping tensor '\(previous.name)' "
          + "(\(previous.offset) + \(previous.byteCount) bytes)")
    }
    self.tensors = tensors
  }
}
