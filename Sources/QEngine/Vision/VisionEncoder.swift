import QFormats

/// What a vision tower computes for one image.
public struct VisionOutput: Sendable {
  /// Tokens per image: patches, plus one for the class token when the tower has one.
  public var tokenCount: Int
  public var hiddenSize: Int
  public var gridHeight: Int
  public var gridWidth: Int
  /// The model's `last_hidden_state`, `[tokenCount, hiddenSize]`: after the final layer norm for
  /// DINOv2 and SigLIP, the last block's output for CLIP (as Hugging Face returns them).
  public var lastHiddenState: [Float]
  /// Hugging Face's `hidden_states`: the embeddings (after CLIP's pre-layer norm), then each
  /// block's output; `layerCount + 1` entries, indexed like Python (`-2` is the next to last).
  public var hiddenStates: [[Float]]

  /// A hidden state by Python-style index, `nil` when out of range.
  public func hiddenState(at index: Int) -> [Float]? {
    let resolved = index < 0 ? hiddenStates.count + index : index
    return hiddenStates.indices.contains(resolved) ? hiddenStates[resolved] : nil
  }
}

/// A ViT-style vision encoder (DINOv2, CLIP or SigLIP vision tower) with its weights in memory
/// as Float.
public final class VisionEncoder: Sendable {
  public let config: VisionConfig
  let embedding: PatchEmbedding
  let preNorm: Norm?
  let blocks: [Block]
  let finalNorm: Norm?

  struct Linear {
    var weight: [Float]
    var bias: [Float]?
    var inputWidth: Int
    var outputWidth: Int

    func callAsFunction(_ input: [Float], rows: Int) -> [Float] {
      VisionKernels.linear(
        input, rows: rows, weight: weight, bias: bias, inputWidth: inputWidth, outputWidth: outputWidth)
    }
  }

  struct Norm {
    var weight: [Float]
    var bias: [Float]
  }

  struct PatchEmbedding {
    var projection: Linear
    var classToken: [Float]?
    /// `[positions, hidden]`, the class token's position first when there is one.
    var positions: [Float]
    var positionGrid: Int
  }

  struct Block {
    var norm1: Norm
    var query, key, value, output: Linear
    var scale1: [Float]?
    var norm2: Norm
    var fc1, fc2: Linear
    var scale2: [Float]?
  }

  /// Loads the tower's weights.
  /// - Parameter prefix: What precedes `embeddings.` in the tensor names: `""` for a
  ///   `Dinov2Model`, `"vision_model."` for a `CLIPVisionModel`, `"vision_tower.vision_model."`
  ///   in LLaVA with a CLIP tower.
  public init(source: any TensorSource, config: VisionConfig, prefix: String) throws {
    self.config = config
    let loader = WeightLoader(source: source, prefix: prefix)
    let d = config.hiddenSize
    let p = config.patchSize
    let patchWidth = config.channels * p * p
    let grid = config.imageSize / p
    let positionCount = grid * grid + (config.hasClassToken ? 1 : 0)
    func linear(_ name: String, _ input: Int, _ output: Int, bias: Bool = true) throws -> Linear {
      Linear(
        weight: try loader.floats(name + ".weight", shape: [output, input]),
        bias: bias ? try loader.floats(name + ".bias", shape: [output]) : nil, inputWidth: input,
        outputWidth: output)
    }
    func norm(_ name: String) throws -> Norm {
      Norm(weight: try loader.floats(name + ".weight", shape: [d]), bias: try loader.floats(name + ".bias", shape: [d]))
    }
    let inter = config.intermediateSize
    var blocks: [Block] = []
    switch config.kind {
    case .dinov2:
      embedding = PatchEmbedding(
        projection: Linear(
          weight: try loader.floats("embeddings.patch_embeddings.projection.weight", shape: [d, config.channels, p, p]),
          bias: try loader.floats("embeddings.patch_embeddings.projection.bias", shape: [d]),
          inputWidth: patchWidth, outputWidth: d),
        classToken: try loader.floats("embeddings.cls_token", shape: [1, 1, d]),
        positions: try loader.floats("embeddings.position_embeddings", shape: [1, positionCount, d]),
        positionGrid: grid)
      preNorm = nil
      for i in 0..<config.layerCount {
        let b = "encoder.layer.\(i)."
        blocks.append(
          Block(
            norm1: try norm(b + "norm1"),
            query: try linear(b + "attention.attention.query", d, d),
            key: try linear(b + "attention.attention.key", d, d),
            value: try linear(b + "attention.attention.value", d, d),
            output: try linear(b + "attention.output.dense", d, d),
            scale1: try loader.floats(b + "layer_scale1.lambda1", shape: [d]),
            norm2: try norm(b + "norm2"),
            fc1: try linear(b + "mlp.fc1", d, inter), fc2: try linear(b + "mlp.fc2", inter, d),
            scale2: try loader.floats(b + "layer_scale2.lambda1", shape: [d])))
      }
      finalNorm = try norm("layernorm")
    case .internVL:
      embedding = PatchEmbedding(
        projection: Linear(
          weight: try loader.floats("embeddings.patch_embeddings.projection.weight", shape: [d, config.channels, p, p]),
          bias: try loader.floats("embeddings.patch_embeddings.projection.bias", shape: [d]),
          inputWidth: patchWidth, outputWidth: d),
        classToken: try loader.floats("embeddings.cls_token", shape: [1, 1, d]),
        positions: try loader.floats("embeddings.position_embeddings", shape: [1, positionCount, d]),
        positionGrid: grid)
      preNorm = nil
      // `attention_bias` decides whether q/k/v have biases; the tensors say it as well.
      let attentionBias = source.info(named: prefix + "encoder.layer.0.attention.q_proj.bias") != nil
      for i in 0..<config.layerCount {
        let b = "encoder.layer.\(i)."
        blocks.append(
          Block(
            norm1: try norm(b + "layernorm_before"),
            query: try linear(b + "attention.q_proj", d, d, bias: attentionBias),
            key: try linear(b + "attention.k_proj", d, d, bias: attentionBias),
            value: try linear(b + "attention.v_proj", d, d, bias: attentionBias),
            output: try linear(b + "attention.projection_layer", d, d),
            scale1: try loader.floats(b + "lambda_1", shape: [d]),
            norm2: try norm(b + "layernorm_after"),
            fc1: try linear(b + "mlp.fc1", d, inter), fc2: try linear(b + "mlp.fc2", inter, d),
            scale2: try loader.floats(b + "lambda_2", shape: [d])))
      }
      // With `use_mean_pooling` (InternVL's towers) the final norm is the identity.
      finalNorm = source.info(named: prefix + "layernorm.weight") != nil ? try norm("layernorm") : nil
    case .clip, .siglip:
      let isCLIP = config.kind == .clip
      embedding = PatchEmbedding(
        projection: Linear(
          weight: try loader.floats("embeddings.patch_embedding.weight", shape: [d, config.channels, p, p]),
          bias: isCLIP ? nil : try loader.floats("embeddings.patch_embedding.bias", shape: [d]),
          inputWidth: patchWidth, outputWidth: d),
        classToken: isCLIP ? try loader.floats("embeddings.class_embedding", shape: [d]) : nil,
        positions: try loader.floats("embeddings.position_embedding.weight", shape: [positionCount, d]),
        positionGrid: grid)
      preNorm = isCLIP ? try norm("pre_layrnorm") : nil
      for i in 0..<config.layerCount {
        let b = "encoder.layers.\(i)."
        blocks.append(
          Block(
            norm1: try norm(b + "layer_norm1"),
            query: try linear(b + "self_attn.q_proj", d, d), key: try linear(b + "self_attn.k_proj", d, d),
            value: try linear(b + "self_attn.v_proj", d, d), output: try linear(b + "self_attn.out_proj", d, d),
            scale1: nil, norm2: try norm(b + "layer_norm2"),
            fc1: try linear(b + "mlp.fc1", d, inter), fc2: try linear(b + "mlp.fc2", inter, d), scale2: nil))
      }
      // CLIP's post-layer norm acts on the pooled class token only, which we do not return.
      finalNorm = isCLIP ? nil : try norm("post_layernorm")
    }
    self.blocks = blocks
  }

  /// Runs the tower on one image of any size that is a multiple of the patch size (the
  /// remainder is cropped, as the strided convolution does).
  public func forward(pixels: PixelTensor) throws -> VisionOutput {
    let d = config.hiddenSize
    let (gridHeight, gridWidth) = try grid(of: pixels)
    var x = try embeddings(pixels: pixels)
    let tokens = x.count / d
    var hidden = [x]
    for block in blocks {
      x = apply(block, to: x, tokens: tokens)
      hidden.append(x)
    }
    let last = lastHiddenState(fromBlockOutput: x)
    return VisionOutput(
      tokenCount: tokens, hiddenSize: d, gridHeight: gridHeight, gridWidth: gridWidth, lastHiddenState: last,
      hiddenStates: hidden)
  }

  /// `lastHiddenState` from the last block's output `[tokens, hidden]`: the final layer norm of
  /// DINOv2 and SigLIP applied, CLIP's left as it is.
  public func lastHiddenState(fromBlockOutput x: [Float]) -> [Float] {
    finalNorm.map {
      VisionKernels.layerNorm(
        x, width: config.hiddenSize, weight: $0.weight, bias: $0.bias, epsilon: config.layerNormEpsilon)
    } ?? x
  }

  /// The input of the first block for one image: patch and position embeddings (after CLIP's
  /// pre-layer norm), `[tokens, hidden]`.
  public func embeddings(pixels: PixelTensor) throws -> [Float] {
    let c = config
    let d = c.hiddenSize
    let (gridHeight, gridWidth) = try grid(of: pixels)
    let positions = try positionEmbeddings(gridHeight: gridHeight, gridWidth: gridWidth, pixels: pixels)
    let patches = im2col(pixels, gridHeight: gridHeight, gridWidth: gridWidth)
    let patchCount = gridHeight * gridWidth
    let projected = embedding.projection(patches, rows: patchCount)
    var x = embedding.classToken.map { $0 + projected } ?? projected
    for i in x.indices { x[i] += positions[i] }
    if let preNorm { x = VisionKernels.layerNorm(x, width: d, weight: preNorm.weight, bias: preNorm.bias, epsilon: c.layerNormEpsilon) }
    return x
  }

  /// The patch grid of an image, checked against the tower's channels and patch size.
  private func grid(of pixels: PixelTensor) throws -> (height: Int, width: Int) {
    let c = config
    guard pixels.channels == c.channels, pixels.height >= c.patchSize, pixels.width >= c.patchSize else {
      throw EngineError.unexpectedShape(
        location: "pixels", tensor: "pixel_values", expected: [c.channels, c.imageSize, c.imageSize],
        found: [pixels.channels, pixels.height, pixels.width])
    }
    return (pixels.height / c.patchSize, pixels.width / c.patchSize)
  }

  private func apply(_ block: Block, to x: [Float], tokens: Int) -> [Float] {
    let c = config
    let d = c.hiddenSize
    var h = VisionKernels.layerNorm(x, width: d, weight: block.norm1.weight, bias: block.norm1.bias, epsilon: c.layerNormEpsilon)
    let attended = VisionKernels.attention(
      query: block.query(h, rows: tokens), key: block.key(h, rows: tokens), value: block.value(h, rows: tokens),
      tokens: tokens, heads: c.headCount, headDim: c.headDim)
    var y = x
    addResidual(&y, block.output(attended, rows: tokens), scale: block.scale1, width: d)
    h = VisionKernels.layerNorm(y, width: d, weight: block.norm2.weight, bias: block.norm2.bias, epsilon: c.layerNormEpsilon)
    var inner = block.fc1(h, rows: tokens)
    VisionKernels.activate(&inner, c.activation)
    addResidual(&y, block.fc2(inner, rows: tokens), scale: block.scale2, width: d)
    return y
  }

  private func addResidual(_ x: inout [Float], _ update: [Float], scale: [Float]?, width: Int) {
    if let scale {
      for i in x.indices { x[i] += update[i] * scale[i % width] }
    } else {
      for i in x.indices { x[i] += update[i] }
    }
  }

  /// Patches as rows of `channels * patch * patch` values in the convolution weight's order.
  private func im2col(_ pixels: PixelTensor, gridHeight: Int, gridWidth: Int) -> [Float] {
    let p = config.patchSize
    let width = pixels.channels * p * p
    var out = [Float](repeating: 0, count: gridHeight * gridWidth * width)
    pixels.values.withUnsafeBufferPointer { input in
      for gy in 0..<gridHeight {
        for gx in 0..<gridWidth {
          var o = (gy * gridWidth + gx) * width
          for channel in 0..<pixels.channels {
            for py in 0..<p {
              let rowStart = (channel * pixels.height + gy * p + py) * pixels.width + gx * p
              for px in 0..<p {
                out[o] = input[rowStart + px]
                o += 1
              }
            }
          }
        }
      }
    }
    return out
  }

  /// Position embeddings for the grid: as stored when it matches, bicubically resized for DINOv2
  /// otherwise (CLIP and SigLIP in Hugging Face only do so on request, so a mismatch is an error).
  private func positionEmbeddings(gridHeight: Int, gridWidth: Int, pixels: PixelTensor) throws -> [Float] {
    let n = embedding.positionGrid
    if gridHeight == n && gridWidth == n { return embedding.positions }
    guard config.kind == .dinov2 else {
      throw EngineError.unexpectedShape(
        location: "pixels", tensor: "pixel_values", expected: [config.channels, config.imageSize, config.imageSize],
        found: [pixels.channels, pixels.height, pixels.width])
    }
    let d = config.hiddenSize
    let classPosition = Array(embedding.positions[0..<d])
    let grid = Array(embedding.positions[d...])
    return classPosition
      + VisionKernels.bicubicResize(grid, inHeight: n, inWidth: n, depth: d, outHeight: gridHeight, outWidth: gridWidth)
  }
}

/// Reads tensors under a prefix, checking their shapes.
struct WeightLoader {
  let source: any TensorSource
  let prefix: String

  func floats(_ name: String, shape: [Int]) throws -> [Float] {
    let full = prefix + name
    guard let info = source.info(named: full) else {
      throw EngineError.missingTensor(location: source.location, tensor: full)
    }
    guard info.shape == shape else {
      throw EngineError.unexpectedShape(location: source.location, tensor: full, expected: shape, found: info.shape)
    }
    return try source.floats(of: full)
  }
}
