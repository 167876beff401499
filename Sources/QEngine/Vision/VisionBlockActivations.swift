/// Walks a vision tower block by block over a batch of images, holding only the current block's
/// input and output (`[tokens of all images, hidden]`), for block-wise calibration.
///
/// Images are stacked as rows; `lengths` gives each image's token count, so images of different
/// sizes (DINOv2 resizes its position grid) can share a batch.
public struct VisionBlockActivations: Sendable {
  public let encoder: VisionEncoder
  public let prefix: String
  public let lengths: [Int]
  /// The index of the block whose input `input` is.
  public private(set) var blockIndex: Int
  /// The input of block `blockIndex` (the embeddings, after CLIP's pre-norm, for block 0).
  public private(set) var input: [Float]

  /// Embeds every image.
  /// - Throws: what `VisionEncoder.forward` throws for an image the tower cannot take.
  public init(encoder: VisionEncoder, prefix: String, images: [PixelTensor]) throws {
    self.encoder = encoder
    self.prefix = prefix
    var lengths: [Int] = []
    var input: [Float] = []
    for pixels in images {
      let embedded = try encoder.embeddings(pixels: pixels)
      lengths.append(embedded.count / encoder.config.hiddenSize)
      input += embedded
    }
    self.lengths = lengths
    self.input = input
    blockIndex = 0
  }

  /// `true` once every block has run.
  public var isFinished: Bool { blockIndex >= encoder.blockCount }

  /// The current block, its full-precision input and output, and moves on to the next block.
  /// - Returns: `nil` after the last block.
  public mutating func next() throws -> (block: VisionBlock, batch: BlockBatch)? {
    guard !isFinished else { return nil }
    let block = try encoder.block(at: blockIndex, prefix: prefix)
    let output = try block.output(input: input, lengths: lengths, replacing: [:])
    let batch = BlockBatch(input: input, target: output, lengths: lengths)
    input = output
    blockIndex += 1
    return (block, batch)
  }
}
