import Dispatch
import Foundation
import QCompute
import QFormats

/// How the pack is laid out on disk.
public struct PackOutputOptions: Sendable {
  /// zstd-compress every `.qweight` (`compression = zstd`).
  public var compress: Bool
  /// Split into shards of at most this many bytes with an index; `nil` for one file.
  public var maxShardBytes: Int?
  /// Tensors quantized at once (each may also finish one more ahead of the writer); each holds
  /// a block of floats and its companions, so peak memory grows with it.
  public var concurrency: Int
  /// Keep a tensor holding NaN or infinity as stored instead of refusing to write the pack.
  public var allowNonFinite: Bool

  public init(compress: Bool = false, maxShardBytes: Int? = nil, concurrency: Int = 2, allowNonFinite: Bool = false) {
    self.compress = compress
    self.maxShardBytes = maxShardBytes
    self.concurrency = max(1, concurrency)
    self.allowNonFinite = allowNonFinite
  }
}

/// What writing a pack produced.
public struct PackWriteSummary: Sendable {
  /// The files written, relative to the output folder.
  public var files: [String]
  /// `.qweight` bytes before and after compression (equal without it).
  public var weightBytesBefore: Int
  public var weightBytesAfter: Int
  /// All tensor bytes as stored.
  public var storedBytes: Int
  /// Tensors kept as stored because they hold NaN or infinity (with `allowNonFinite`).
  public var keptNonFinite: [NonFiniteElement] = []
}

/// One tensor made ready for the file: its stored tensors, where their bytes are, its checksum.
struct PreparedEntry: Sendable {
  var outputs: [TensorInfo]
  /// Offsets of each output in the spool; `nil` for a tensor copied from the source as is.
  var spoolOffsets: [Int]?
  var description: PackDescription?
  var checksum: String
  var weightBytesBefore = 0
  var weightBytesAfter = 0
  /// Companion bytes, held from quantization until the writer spools them.
  var payloads: [[UInt8]] = []
  /// Set when the tensor was planned for quantizing but kept because it holds NaN or infinity.
  var keptNonFinite: NonFiniteElement? = nil
}

/// Results of the workers, handed to the writing thread in plan order.
final class PreparedSlots: @unchecked Sendable {
  private let condition = NSCondition()
  private var slots: [Result<PreparedEntry, any Error>?]
  private var cancelled = false

  init(count: Int) { slots = Array(repeating: nil, count: count) }

  func put(_ index: Int, _ result: Result<PreparedEntry, any Error>) {
    condition.lock()
    slots[index] = result
    condition.broadcast()
    condition.unlock()
  }

  /// Waits for result `index` and takes it out.
  func take(_ index: Int) -> Result<PreparedEntry, any Error> {
    condition.lock()
    defer { condition.unlock() }
    while slots[index] == nil { condition.wait() }
    let result = slots[index] ?? .failure(ConvertError.fileSystem(path: "-", reason: "internal: empty slot"))
    slots[index] = nil
    return result
  }

  var isCancelled: Bool {
    condition.lock()
    defer { condition.unlock() }
    return cancelled
  }

  func cancel() {
    condition.lock()
    cancelled = true
    condition.unlock()
  }
}

/// A counter shared by the workers.
final class NextIndex: @unchecked Sendable {
  private let lock = NSLock()
  private var value = 0
  func take() -> Int {
    lock.lock()
    defer { lock.unlock() }
    value += 1
    return value - 1
  }
}

extension ConvertJob {
  /// Quantizes every planned tensor of `source` and writes the pack into `directory`.
  ///
  /// Tensors are quantized by `options.concurrency` workers while this thread writes finished
  /// ones, in plan order, to a scratch spool; at most `2 x concurrency` tensors are in flight,
  /// each holding one block of floats (`blockElements`) and its companions, so peak memory
  /// follows the largest tensor's packed size, never the model. Once every checksum and compressed size is known, the header is written
  /// and the spool copied after it, one tensor at a time.
  public static func writePack(
    plan: ConvertPlan, source: any TensorSource, into directory: String, options: PackOutputOptions, quiet: Bool
  ) throws -> PackWriteSummary {
    let source = plan.applyingReplacements(to: source)
    let spool = try PayloadSpool(directory: directory)
    let entries = plan.entries
    let count = entries.count
    let slots = PreparedSlots(count: count)
    // Workers may run one tensor ahead of the writer each.
    let windowSize = 2 * options.concurrency
    let window = DispatchSemaphore(value: windowSize)
    let next = NextIndex()
    let workers = DispatchGroup()
    let compress = options.compress
    let allowNonFinite = options.allowNonFinite
    // Own threads, not the dispatch pool: a worker waiting for the window must not hold a pool
    // thread that the quantizers' row-parallel loops need.
    for _ in 0..<min(options.concurrency, max(count, 1)) {
      workers.enter()
      let thread = Thread {
        defer { workers.leave() }
        while true {
          window.wait()
          let index = next.take()
          guard index < count, !slots.isCancelled else {
            window.signal()
            return
          }
          slots.put(
            index,
            Result { try prepare(entries[index], source: source, compress: compress, allowNonFinite: allowNonFinite) })
        }
      }
      thread.stackSize = 8 << 20
      thread.start()
    }

    var prepared: [PreparedEntry] = []
    prepared.reserveCapacity(count)
    var progress = ConvertProgress(quiet: quiet, totalBytes: plan.bytesBefore, totalCount: count)
    do {
      for index in 0..<count {
        var entry = try slots.take(index).get()
        if !entry.payloads.isEmpty {
          var offsets: [Int] = []
          for payload in entry.payloads {
            offsets.append(try payload.withUnsafeBytes { (raw) throws(ConvertError) in try spool.append(raw) })
          }
          entry.spoolOffsets = offsets
          entry.payloads = []
        }
        window.signal()
        let action =
          entry.keptNonFinite != nil
          ? "kept (holds NaN or infinity)" : entries[index].spec.map { "\($0)" } ?? "kept (\(entries[index].reason))"
        progress.advance(name: entries[index].info.name, bytes: entries[index].bytesBefore, action: action)
        prepared.append(entry)
      }
    } catch {
      slots.cancel()
      for _ in 0..<windowSize { window.signal() }
      workers.wait()
      throw error
    }
    workers.wait()
    progress.finish()

    // The header, now that sizes and checksums are known.
    var metadata = ["format": "pt", PackDescription.versionKey: PackDescription.version]
    for (entry, ready) in zip(entries, prepared) {
      if let description = ready.description {
        metadata[PackDescription.keyPrefix + entry.info.name] = description.jsonString()
      } else {
        metadata[PackDescription.checksumKeyPrefix + entry.info.name] = ready.checksum
      }
    }
    var location: [String: (offset: Int?, count: Int)] = [:]
    for ready in prepared {
      for (position, output) in ready.outputs.enumerated() {
        location[output.name] = (ready.spoolOffsets?[position], output.byteCount)
      }
    }
    let outputs = prepared.flatMap(\.outputs)
    func copy(_ info: TensorInfo, append: (String, UnsafeRawBufferPointer) throws -> Void) throws {
      guard let (offset, byteCount) = location[info.name] else {
        throw ConvertError.fileSystem(path: directory, reason: "internal: tensor '\(info.name)' was not prepared")
      }
      if let offset {
        let bytes = try spool.read(offset: offset, count: byteCount)
        try bytes.withUnsafeBytes { try append(info.name, $0) }
      } else {
        try source.withRawBytes(of: info.name) { try append(info.name, $0) }
        releasePages(of: info.name, in: source)
      }
    }
    let files: [String]
    if let limit = options.maxShardBytes {
      let writer = try ShardedWriter(
        directory: directory, plan: outputs, maxShardBytes: limit, metadata: metadata, order: .asGiven)
      for info in writer.order { try copy(info) { try writer.append(name: $0, bytes: $1) } }
      try writer.finish()
      files = writer.shardNames + (writer.indexName.map { [$0] } ?? [])
    } else {
      let writer = try SafetensorsWriter(
        path: directory + "/model.safetensors", plan: outputs, metadata: metadata, order: .asGiven)
      for info in writer.order { try copy(info) { try writer.append(name: $0, bytes: $1) } }
      try writer.finish()
      files = ["model.safetensors"]
    }
    return PackWriteSummary(
      files: files, weightBytesBefore: prepared.reduce(0) { $0 + $1.weightBytesBefore },
      weightBytesAfter: prepared.reduce(0) { $0 + $1.weightBytesAfter },
      storedBytes: outputs.reduce(0) { $0 + $1.byteCount }, keptNonFinite: prepared.compactMap(\.keptNonFinite))
  }

  /// Floats widened and quantized at a time within one tensor (16 MB), so a large embedding
  /// never needs a full float copy.
  static let blockElements = 1 << 22

  /// Drops a tensor's mapped input pages once read (see `SafetensorsFile.releasePages`).
  static func releasePages(of name: String, byteRange: Range<Int>? = nil, in source: any TensorSource) {
    if let replaced = source as? ReplacedTensorSource {
      if replaced.bytes[name] == nil { releasePages(of: name, byteRange: byteRange, in: replaced.base) }
    } else if let file = source as? SafetensorsFile {
      file.releasePages(of: name, byteRange: byteRange)
    } else if let sharded = source as? ShardedCheckpoint {
      sharded.shard(holding: name)?.releasePages(of: name, byteRange: byteRange)
    }
  }

  /// An error from a block of rows, its element index made relative to the whole tensor.
  static func shiftedRows(_ error: PackError, by firstRow: Int) -> PackError {
    switch error {
    case .nonFinite(let location, let tensor, let index, let value) where !index.isEmpty:
      return .nonFinite(location: location, tensor: tensor, index: [index[0] + firstRow] + index.dropFirst(), value: value)
    case .dequantizesNonFinite(let location, let tensor, let scaleDType, let index, let value) where !index.isEmpty:
      return .dequantizesNonFinite(
        location: location, tensor: tensor, scaleDType: scaleDType, index: [index[0] + firstRow] + index.dropFirst(),
        value: value)
    default:
      return error
    }
  }

  /// Quantizes (or checksums, when kept) one planned tensor.
  ///
  /// Grids whose groups lie within a row are quantized in blocks of rows (`blockElements`
  /// floats each) and the blocks' companion bytes concatenated, which is exactly the layout of
  /// quantizing the whole matrix; the bilevel grid, whose second level spans rows, is done whole.
  ///
  /// A tensor holding NaN or infinity is refused with `ConvertError.nonFinite`, or kept as
  /// stored when `allowNonFinite` is set; tensors quantized here are checked as they are
  /// quantized, the others (kept, or quantized earlier by a calibrated method) by a pass of their own.
  static func prepare(
    _ entry: PlanEntry, source: any TensorSource, compress: Bool, allowNonFinite: Bool = false
  ) throws -> PreparedEntry {
    let info = entry.info
    let name = info.name
    func keptAsStored(_ nonFinite: NonFiniteElement? = nil) throws -> PreparedEntry {
      let crc = try source.withRawBytes(of: name) { CRC32C.checksum($0) }
      releasePages(of: name, in: source)
      return PreparedEntry(
        outputs: [info], spoolOffsets: nil, description: nil, checksum: CRC32C.formatted(crc), keptNonFinite: nonFinite)
    }
    if entry.spec == nil || entry.precomputed != nil,
      let found = try NonFiniteElement.first(in: info, of: source, blockElements: blockElements)
    {
      guard allowNonFinite else { throw ConvertError.nonFinite(found) }
      return try keptAsStored(entry.spec == nil ? nil : found)
    }
    guard let spec = entry.spec else { return try keptAsStored() }
    var parts: [[UInt8]]
    // The spec as written: its scale dtype is widened to F32 when the planned one cannot hold
    // the tensor's scales (see `PackEncoder.pack`).
    var stored = spec
    if let quantized = entry.precomputed {
      let packed = try PackEncoder.pack(quantized: quantized, info: info, spec: spec, location: source.location)
      stored.scaleDType = packed.description.scaleDType
      parts = packed.companions.map(\.bytes)
    } else {
      do {
        (parts, stored) = try quantizeInBlocks(entry, source: source, spec: spec)
      } catch PackError.nonFinite(let location, let tensor, let index, let value) {
        let found = NonFiniteElement(location: location, tensor: tensor, index: index, shape: info.shape, value: value)
        guard allowNonFinite else { throw ConvertError.nonFinite(found) }
        return try keptAsStored(found)
      }
    }
    let (planned, companions) = try PackEncoder.companions(of: info, spec: stored, location: source.location)
    for (companion, bytes) in zip(companions, parts) where companion.byteCount != bytes.count {
      throw PackError.cannotPack(
        location: source.location, tensor: name,
        reason: "companion '\(companion.name)' came out as \(bytes.count) bytes, not \(companion.byteCount)")
    }

    var description = planned
    var outputs: [TensorInfo] = []
    var payloads: [[UInt8]] = []
    var before = 0
    var after = 0
    var crc: UInt32 = 0
    for (info, bytes) in zip(companions, parts) {
      var stored = (info: info, bytes: bytes)
      if info.name == name + ".qweight" {
        before = bytes.count
        if compress {
          let frame = try bytes.withUnsafeBytes { (raw) throws(PackError) in
            try PackCompression.compress(raw, location: source.location, tensor: name)
          }
          stored = (TensorInfo(name: info.name, dtype: .u8, shape: [frame.count]), frame)
          description.compression = "zstd"
        }
        after = stored.bytes.count
      }
      crc = CRC32C.checksum(stored.bytes, continuing: crc)
      outputs.append(stored.info)
      payloads.append(stored.bytes)
    }
    description.checksum = CRC32C.formatted(crc)
    return PreparedEntry(
      outputs: outputs, spoolOffsets: nil, description: description, checksum: CRC32C.formatted(crc),
      weightBytesBefore: before, weightBytesAfter: after, payloads: payloads)
  }

  /// Round-to-nearest style quantization of one planned tensor, a block of rows at a time.
  ///
  /// - Returns: the companions' bytes and the spec they were written with: `spec`, or `spec`
  ///   with F32 scales when a block's scales overflowed its scale dtype (every block is then
  ///   quantized again, so the tensor has one scale dtype).
  static func quantizeInBlocks(
    _ entry: PlanEntry, source: any TensorSource, spec: PackSpec
  ) throws -> (parts: [[UInt8]], spec: PackSpec) {
    var spec = spec
    while true {
      let (parts, used) = try quantizeInBlocks(entry, source: source, exactly: spec)
      if used == spec.scaleDType { return (parts, spec) }
      spec.scaleDType = used
    }
  }

  /// One pass of `quantizeInBlocks` with `spec`; stops early and returns the wider scale dtype
  /// a block needed, if one did.
  static func quantizeInBlocks(
    _ entry: PlanEntry, source: any TensorSource, exactly spec: PackSpec
  ) throws -> (parts: [[UInt8]], scaleDType: DType) {
    let info = entry.info
    let name = info.name
    let (_, companions) = try PackEncoder.companions(of: info, spec: spec, location: source.location)
    guard let (rows, columns) = packMatrixShape(info.shape) else { return ([], spec.scaleDType) }
    let rowsPerBlock = spec.grid == .bilevel ? max(rows, 1) : max(1, blockElements / max(columns, 1))
    var parts: [[UInt8]] = companions.map { companion in
      var bytes: [UInt8] = []
      bytes.reserveCapacity(companion.byteCount)
      return bytes
    }
    var block = [Float](repeating: 0, count: min(rows, rowsPerBlock) * columns)
    let elementSize = info.dtype.byteSize
    for firstRow in stride(from: 0, to: rows, by: rowsPerBlock) {
      let blockRows = min(rowsPerBlock, rows - firstRow)
      let count = blockRows * columns
      let byteRange = (firstRow * columns * elementSize)..<((firstRow + blockRows) * columns * elementSize)
      try source.withRawBytes(of: name) { raw in
        guard raw.count == info.byteCount else {
          throw PackError.cannotPack(
            location: source.location, tensor: name, reason: "it holds \(raw.count) bytes, not \(info.byteCount)")
        }
        block.withUnsafeMutableBufferPointer { buffer in
          DTypeConversion.widen(
            UnsafeRawBufferPointer(rebasing: raw[byteRange]), from: info.dtype,
            into: UnsafeMutableBufferPointer(rebasing: buffer[0..<count]))
        }
      }
      releasePages(of: name, byteRange: byteRange, in: source)
      let blockInfo = TensorInfo(name: name, dtype: info.dtype, shape: [blockRows] + info.shape.dropFirst())
      let packed: PackedTensor
      do {
        packed = try block.withUnsafeBufferPointer { buffer throws(PackError) in
          try PackEncoder.pack(
            UnsafeBufferPointer(rebasing: buffer[0..<count]), info: blockInfo, spec: spec, location: source.location)
        }
      } catch {
        throw shiftedRows(error, by: firstRow)
      }
      if packed.description.scaleDType != spec.scaleDType { return ([], packed.description.scaleDType) }
      for (position, companion) in packed.companions.enumerated() {
        parts[position].append(contentsOf: companion.bytes)
      }
    }
    return (parts, spec.scaleDType)
  }
}

