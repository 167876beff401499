/// Writes a checkpoint as shards of at most `maxShardBytes` each, plus the index.
///
/// The split follows huggingface_hub: greedy in plan order, a new shard when the next tensor
/// would overflow the current one, and a tensor larger than the limit alone in its shard —
/// which, as there, is placed before the shard still being filled.
/// Shards are `model-00001-of-00003.safetensors`, each with `format: pt`; the index
/// `model.safetensors.index.json` carries `total_size` (the sum of tensor bytes) and the
/// caller's metadata. A single shard is written as `model.safetensors` with the caller's
/// metadata and no index. Each file is atomic on its own; only one is open at a time.
public final class ShardedWriter {
  public let directory: String
  /// The file name of each shard.
  public let shardNames: [String]
  /// The tensors of each shard, in the order `append` expects them.
  public let shards: [[TensorInfo]]
  /// The tensors in the order `append` expects them.
  public var order: [TensorInfo] { shards.flatMap { $0 } }
  /// The name of the index file, or `nil` for a single shard.
  public let indexName: String?

  private let metadata: [String: String]
  /// Each shard file's own metadata when there are several (the index's otherwise).
  private let shardMetadata: [String: String]?
  /// Each shard's tensors in plan order, the order huggingface_hub lists them in the index.
  private let splitInPlanOrder: [[TensorInfo]]
  private let layout: SafetensorsWriter.Order
  private var current: SafetensorsWriter?
  private var currentShard = -1
  private var appendedInShard = 0
  private var writtenCount = 0
  private var finished = false

  /// Plans the shards; no file is created until the first tensor is appended.
  ///
  /// - Parameters:
  ///   - order: `.reference` sorts tensors within each shard as the reference writer does
  ///     (the split itself always follows the plan's order).
  ///   - shardMetadata: each shard's `__metadata__` when there are several (none by default).
  /// - Throws: `SafetensorsError.invalidPlan` for a bad plan or a non-positive limit.
  public init(
    directory: String, plan: [TensorInfo], maxShardBytes: Int, metadata: [String: String] = [:],
    order: SafetensorsWriter.Order = .reference, baseName: String = "model", shardMetadata: [String: String]? = nil
  ) throws {
    self.directory = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
    guard maxShardBytes > 0 else {
      throw SafetensorsError.invalidPlan(location: directory, reason: "the shard size limit must be positive")
    }
    // Validates names and shapes before any byteCount is computed.
    _ = try SafetensorsWriter.header(plan: plan, location: directory)
    let split = Self.split(plan, maxShardBytes: maxShardBytes)
    splitInPlanOrder = split
    shards = try split.map { try SafetensorsWriter.header(plan: $0, order: order, location: directory).order }
    if shards.count == 1 {
      shardNames = ["\(baseName).safetensors"]
      indexName = nil
    } else {
      let count = shards.count
      shardNames = (1...count).map { "\(baseName)-\(Self.fiveDigits($0))-of-\(Self.fiveDigits(count)).safetensors" }
      indexName = "\(baseName).safetensors.index.json"
    }
    self.metadata = metadata
    self.shardMetadata = shardMetadata
    layout = order
  }

  /// Groups `plan` greedily, as huggingface_hub's `split_state_dict_into_shards_factory`.
  public static func split(_ plan: [TensorInfo], maxShardBytes: Int) -> [[TensorInfo]] {
    var shards: [[TensorInfo]] = []
    var current: [TensorInfo] = []
    var currentBytes = 0
    for tensor in plan {
      if tensor.byteCount > maxShardBytes {
        shards.append([tensor])
        continue
      }
      if currentBytes + tensor.byteCount > maxShardBytes {
        shards.append(current)
        current = []
        currentBytes = 0
      }
      current.append(tensor)
      currentBytes += tensor.byteCount
    }
    if !current.isEmpty || shards.isEmpty { shards.append(current) }
    return shards
  }

  private static func fiveDigits(_ n: Int) -> String {
    let text = String(n)
    return String(repeating: "0", count: max(0, 5 - text.count)) + text
  }

  /// Appends the next tensor's raw bytes, starting the next shard when needed.
  public func append(name: String, bytes: UnsafeRawBufferPointer) throws {
    try writer(for: name).append(name: name, bytes: bytes)
    try advance()
  }

  /// Appends the next tensor's raw bytes, starting the next shard when needed.
  public func append(name: String, bytes: [UInt8]) throws {
    try bytes.withUnsafeBytes { try append(name: name, bytes: $0) }
  }

  /// Appends the next tensor in pieces (see `SafetensorsWriter.append(name:inPieces:)`).
  public func append(
    name: String, inPieces body: (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void
  ) throws {
    try writer(for: name).append(name: name, inPieces: body)
    try advance()
  }

  /// Appends the next tensor from floats, narrowed to its planned floating-point dtype.
  public func append(name: String, converting values: UnsafeBufferPointer<Float>, saturatingF8: Bool = false) throws {
    try writer(for: name).append(name: name, converting: values, saturatingF8: saturatingF8)
    try advance()
  }

  /// Checks every tensor was written, finishes the last shard and writes the index.
  public func finish() throws {
    guard !finished else { return }
    if shards.count == 1, shards[0].isEmpty, currentShard < 0 {
      // An empty plan still gets its (empty) file.
      try openNextShard()
      try current?.finish()
      current = nil
    }
    let all = order
    if writtenCount < all.count {
      throw SafetensorsError.unfinished(location: directory, missing: all[writtenCount...].map(\.name))
    }
    if let indexName {
      let file = try AtomicFile(destination: "\(directory)/\(indexName)")
      let bytes = indexBytes()
      try bytes.withUnsafeBytes { try file.write($0) }
      try file.commit()
    }
    finished = true
  }

  /// The index JSON, laid out as huggingface_hub's `json.dump(index, indent=2)`.
  public func indexBytes() -> [UInt8] {
    var json = Array("{\n  \"metadata\": {\n    \"total_size\": \(order.reduce(0) { $0 + $1.byteCount })".utf8)
    for key in metadata.keys.sorted() where key != "total_size" {
      json.append(contentsOf: ",\n    ".utf8)
      _appendJSONString(key, to: &json)
      json.append(contentsOf: ": ".utf8)
      _appendJSONString(metadata[key] ?? "", to: &json)
    }
    json.append(contentsOf: "\n  },\n  \"weight_map\": {".utf8)
    var first = true
    for (shard, name) in zip(splitInPlanOrder, shardNames) {
      for tensor in shard {
        json.append(contentsOf: (first ? "\n    " : ",\n    ").utf8)
        first = false
        _appendJSONString(tensor.name, to: &json)
        json.append(contentsOf: ": ".utf8)
        _appendJSONString(name, to: &json)
      }
    }
    json.append(contentsOf: "\n  }\n}\n".utf8)
    return json
  }

  private func writer(for name: String) throws -> SafetensorsWriter {
    if current == nil {
      guard currentShard + 1 < shards.count else {
        throw SafetensorsError.unexpectedTensor(location: directory, tensor: name, expected: nil)
      }
      try openNextShard()
    }
    guard let current else { throw SafetensorsError.unexpectedTensor(location: directory, tensor: name, expected: nil) }
    return current
  }

  private func openNextShard() throws {
    currentShard += 1
    appendedInShard = 0
    let fileMetadata = indexName == nil ? metadata : shardMetadata ?? [:]
    current = try SafetensorsWriter(
      path: "\(directory)/\(shardNames[currentShard])", plan: shards[currentShard], metadata: fileMetadata,
      order: layout)
  }

  private func advance() throws {
    appendedInShard += 1
    writtenCount += 1
    if let current, appendedInShard >= shards[currentShard].count {
      try current.finish()
      self.current = nil
    }
  }
}
