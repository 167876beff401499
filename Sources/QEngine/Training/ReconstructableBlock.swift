/// One batch for block-wise reconstruction: the block's input as it arrives in the quantized
/// model, and the full-precision block's output on the same data, both `[rows, width]` with the
/// rows of several sequences (or images) stacked.
public struct BlockBatch: Sendable {
  public var input: [Float]
  public var target: [Float]
  /// The length of each stacked sequence; attention never crosses them.
  public var lengths: [Int]

  public init(input: [Float], target: [Float], lengths: [Int]) {
    self.input = input
    self.target = target
    self.lengths = lengths
  }
}

/// A transformer block (LLM decoder layer or ViT block) whose linear weights can be swapped for
/// candidate weights, so that a rounding optimiser such as AdaRound can fit them to reproduce the
/// full-precision block's output instead of each layer's output alone.
public protocol ReconstructableBlock: Sendable {
  /// The width of the block's input and output rows.
  var width: Int { get }
  /// The quantizable linear weights, by checkpoint name, as `[outputs, inputs]`.
  var linearShapes: [String: [Int]] { get }
  /// The block's current weight for a name in `linearShapes`.
  func linearWeight(named name: String) throws -> [Float]
  /// The block's output `[rows, width]` with the weights in `replacing` used instead of its own.
  func output(input: [Float], lengths: [Int], replacing: [String: [Float]]) throws -> [Float]
  /// The reconstruction loss `mean((output - target)²)` over all elements and its gradient with
  /// respect to each weight in `replacing`.
  func reconstruction(
    _ batch: BlockBatch, replacing: [String: [Float]]
  ) throws -> (loss: Float, gradients: [String: [Float]])
}
