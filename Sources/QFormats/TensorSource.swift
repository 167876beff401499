/// A checkpoint that lists its tensors up front and reads their data only when asked.
///
/// Every reader of the format layer (safetensors files, shard sets, HDF5 files, model folders)
/// conforms, so the tools work on any of them alike. Implementations are safe to read from
/// several threads at once: statistics and conversion run on all cores.
public protocol TensorSource: AnyObject, Sendable {
  /// A path or name to put in messages.
  var location: String { get }
  /// Every tensor, in a deterministic order (the file's order where the format has one).
  var tensors: [TensorInfo] { get }
  /// String metadata (safetensors `__metadata__`, HDF5 root attributes).
  var metadata: [String: String] { get }
  /// Calls `body` with the tensor's raw little-endian bytes; the buffer is valid only inside.
  func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R
}

extension TensorSource {
  /// The tensor's description, or `nil` when there is none of that name.
  public func info(named name: String) -> TensorInfo? {
    tensors.first { $0.name == name }
  }
}
