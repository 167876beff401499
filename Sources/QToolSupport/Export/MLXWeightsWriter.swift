import QFormats

/// Where an MLX export's weights go: one `model.safetensors`, or shards of at most a size as
/// mlx_lm's `save` names them (`model-00001-of-00002.safetensors`), each with `format: mlx`.
final class MLXWeightsWriter {
  private enum Sink {
    case single(SafetensorsWriter)
    case sharded(ShardedWriter)
  }

  private let sink: Sink
  /// The tensors in the order `append` expects them.
  let order: [TensorInfo]
  /// The file each tensor goes to, for the index.
  let shardOf: [String: String]

  init(folder: String, plan: [TensorInfo], maxShardBytes: Int?) throws {
    let metadata = ["format": "mlx"]
    if let maxShardBytes {
      let writer = try ShardedWriter(
        directory: folder, plan: plan, maxShardBytes: maxShardBytes, metadata: metadata, order: .reference,
        shardMetadata: metadata)
      sink = .sharded(writer)
      order = writer.order
      var shardOf: [String: String] = [:]
      for (tensors, name) in zip(writer.shards, writer.shardNames) {
        for tensor in tensors { shardOf[tensor.name] = name }
      }
      self.shardOf = shardOf
    } else {
      let writer = try SafetensorsWriter(
        path: folder + "/model.safetensors", plan: plan, metadata: metadata, order: .reference)
      sink = .single(writer)
      order = writer.order
      shardOf = Dictionary(uniqueKeysWithValues: plan.map { ($0.name, "model.safetensors") })
    }
  }

  func append(name: String, bytes: [UInt8]) throws {
    switch sink {
    case .single(let writer): try writer.append(name: name, bytes: bytes)
    case .sharded(let writer): try writer.append(name: name, bytes: bytes)
    }
  }

  func append(name: String, inPieces body: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
    switch sink {
    case .single(let writer): try writer.append(name: name, inPieces: body)
    case .sharded(let writer): try writer.append(name: name, inPieces: body)
    }
  }

  func finish() throws {
    switch sink {
    case .single(let writer): try writer.finish()
    case .sharded(let writer): try writer.finish()
    }
  }
}
