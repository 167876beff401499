import QCompute
import QFormats

/// A llama- or qwen2-architecture GGUF file read under Hugging Face tensor names, as the
/// checkpoint it was converted from: `token_embd.weight` reads as `model.embed_tokens.weight`,
/// `blk.3.attn_q.weight` as `model.layers.3.self_attn.q_proj.weight`, and so on.
///
/// Block-quantized tensors read as f32 (dequantized as ggml does, through `DequantizedGGUF`),
/// plain ones as stored. For the llama architecture the rows of q and k are put back in
/// Hugging Face order: llama.cpp's converter interleaves the two rotary halves of each head
/// (`permute` in `convert_hf_to_gguf.py`), since ggml rotates adjacent pairs. Tensors with no
/// Hugging Face counterpart are left out.
public final class GGUFDecoderSource: TensorSource, @unchecked Sendable {
  public let file: GGUFFile
  public let decoder: GGUFDecoderConfig
  public let tensors: [TensorInfo]
  public var location: String { file.location }
  public var metadata: [String: String] { file.metadata }

  private let dequantized: DequantizedGGUF
  /// The GGUF name of each Hugging Face name.
  private let storedNames: [String: String]
  /// Hugging Face names whose rows are un-permuted, with the number of heads they hold.
  private let permutedHeads: [String: Int]
  private let infoByName: [String: TensorInfo]

  /// Hugging Face names of a layer's tensors, by their GGUF name within `blk.N.`.
  static let layerNames: [String: String] = [
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
  ]

  /// Hugging Face names of the tensors outside the layers.
  static let topNames: [String: String] = [
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
  ]

  /// The Hugging Face name of a GGUF tensor, or `nil` when it has none.
  public static func huggingFaceName(of name: String) -> String? {
    if let top = topNames[name] { return top }
    let parts = name.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]), layer >= 0,
      let module = layerNames[String(parts[2])], parts[3] == "weight" || parts[3] == "bias"
    else { return nil }
    return "model.layers.\(layer).\(module).\(parts[3])"
  }

  /// Wraps `file`, whose metadata gives the architecture and head counts.
  /// - Throws: `EngineError` for an architecture the engine does not run or unusable metadata,
  ///   `DequantizeError` for a block type that cannot be dequantized.
  public init(file: GGUFFile) throws {
    self.file = file
    decoder = try GGUFDecoderConfig(file: file)
    dequantized = try DequantizedGGUF(wrapping: file)
    var listed: [TensorInfo] = []
    var stored: [String: String] = [:]
    var permuted: [String: Int] = [:]
    for info in dequantized.tensors {
      guard let name = Self.huggingFaceName(of: info.name) else { continue }
      listed.append(TensorInfo(name: name, dtype: info.dtype, shape: info.shape))
      stored[name] = info.name
      guard decoder.architecture.permutesQueryKey else { continue }
      if name.hasSuffix("self_attn.q_proj.weight") || name.hasSuffix("self_attn.q_proj.bias") {
        permuted[name] = decoder.headCount
      } else if name.hasSuffix("self_attn.k_proj.weight") || name.hasSuffix("self_attn.k_proj.bias") {
        permuted[name] = decoder.keyValueHeadCount
      }
    }
    for (name, heads) in permuted {
      let rows = listed.first { $0.name == name }?.shape.first ?? 0
      guard rows % (2 * heads) == 0 else {
        throw DecoderError.invalidWeight(
          location: file.location, tensor: stored[name] ?? name,
          reason: "has \(rows) rows, which do not split into \(heads) heads of two rotary halves")
      }
    }
    tensors = listed
    storedNames = stored
    permutedHeads = permuted
    infoByName = Dictionary(listed.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
  }

  /// The tensor's description under its Hugging Face name; constant time.
  public func info(named name: String) -> TensorInfo? { infoByName[name] }

  /// The tensor's bytes under its Hugging Face name: as stored for plain types, little-endian
  /// f32 for block types, with q/k rows back in Hugging Face order.
  public func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
    guard let storedName = storedNames[name], let info = infoByName[name] else {
      throw EngineError.missingTensor(location: location, tensor: name)
    }
    return try dequantized.withRawBytes(of: storedName) { bytes in
      guard let heads = permutedHeads[name] else { return try body(bytes) }
      let rows = info.shape.first ?? 0
      let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
      defer { scratch.deallocate() }
      Self.unpermuteRows(bytes, rows: rows, heads: heads, into: scratch)
      return try body(UnsafeRawBufferPointer(scratch))
    }
  }

  /// Undoes `permute`: within each head of `rows / heads` rows, GGUF row `2j + i` holds
  /// Hugging Face row `i * half + j` (`i` in 0...1, `j` below `half`, half the head's rows).
  static func unpermuteRows(
    _ source: UnsafeRawBufferPointer, rows: Int, heads: Int, into destination: UnsafeMutableRawBufferPointer
  ) {
    guard rows > 0, let from = source.baseAddress, let to = destination.baseAddress else { return }
    let rowBytes = source.count / rows
    let headRows = rows / heads
    let half = headRows / 2
    for head in 0..<heads {
      for i in 0..<2 {
        for j in 0..<half {
          let source = (head * headRows + 2 * j + i) * rowBytes
          let target = (head * headRows + i * half + j) * rowBytes
          (to + target).copyMemory(from: from + source, byteCount: rowBytes)
        }
      }
    }
  }
}
