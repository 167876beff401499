/// A linear weight of a decoder block as the checkpoint stores it: one engine slot, or several
/// slots that read the same input stacked by rows in one tensor (Phi-3's `self_attn.qkv_proj`
/// holds q, k then v; `mlp.gate_up_proj` holds gate then up).
///
/// Calibration and training work on these, so a fused weight is quantized (and trained) as the
/// one matrix the pack stores; the engine's forward still runs the slots apart.
public struct StoredLinear: Sendable, Hashable, CustomStringConvertible {
  /// The module's path after `model.layers.N.`, e.g. `self_attn.qkv_proj`.
  public let module: String
  /// The engine slots whose rows the tensor holds, in order; they share one input.
  public let slots: [LinearSlot]

  init(module: String, slots: [LinearSlot]) {
    precondition(!slots.isEmpty && slots.allSatisfy { $0.input == slots[0].input })
    self.module = module
    self.slots = slots
  }

  /// One unfused slot, named as the slot.
  public init(_ slot: LinearSlot) { self.init(module: slot.rawValue, slots: [slot]) }

  public static let fusedQueryKeyValue = StoredLinear(module: "self_attn.qkv_proj", slots: [.query, .key, .value])
  public static let fusedGateUp = StoredLinear(module: "mlp.gate_up_proj", slots: [.gate, .up])

  /// The activation every row of this weight multiplies.
  public var input: LinearInput { slots[0].input }
  public var isFused: Bool { slots.count > 1 }
  public var description: String { module }

  /// The checkpoint name of this weight in block `block`.
  public func tensorName(block: Int, prefix: String = "") -> String {
    "\(prefix)model.layers.\(block).\(module).weight"
  }

  /// The rows each slot takes, in order, for a model of `configuration`.
  public func rowCounts(_ configuration: DecoderConfiguration) -> [Int] {
    slots.map { configuration.shape(of: $0).rows }
  }

  /// `[rows, columns]` of the stored tensor for a model of `configuration`.
  public func shape(_ configuration: DecoderConfiguration) -> (rows: Int, columns: Int) {
    (rowCounts(configuration).reduce(0, +), configuration.shape(of: slots[0]).columns)
  }
}

extension DecoderArchitecture {
  /// The linear weights of a block as the checkpoint stores them, in the order the forward
  /// reads them: the seven slots apart, or with q/k/v and gate/up fused.
  public var storedLinears: [StoredLinear] {
    fusedProjections
      ? [.fusedQueryKeyValue, StoredLinear(.output), .fusedGateUp, StoredLinear(.down)]
      : LinearSlot.allCases.map(StoredLinear.init)
  }
}

extension DecoderConfiguration {
  /// `[rows, columns]` (outputs, inputs) of the weight in `slot`.
  public func shape(of slot: LinearSlot) -> (rows: Int, columns: Int) {
    let queryWidth = headCount * headDimension
    let keyWidth = keyValueHeadCount * headDimension
    return switch slot {
    case .query: (queryWidth, hiddenSize)
    case .key, .value: (keyWidth, hiddenSize)
    case .output: (hiddenSize, queryWidth)
    case .gate, .up: (intermediateSize, hiddenSize)
    case .down: (hiddenSize, intermediateSize)
    }
  }
}

/// Row-major matrices of equal width stacked by rows, and cut again.
enum RowStack {
  /// `parts` one after another.
  static func join<T>(_ parts: [[T]]) -> [T] { parts.flatMap { $0 } }

  /// `values` cut into consecutive blocks of `rows` rows of `columns`.
  static func split<T>(_ values: [T], rows: [Int], columns: Int) -> [[T]] {
    var start = 0
    return rows.map { count in
      defer { start += count * columns }
      return Array(values[start..<(start + count * columns)])
    }
  }
}
