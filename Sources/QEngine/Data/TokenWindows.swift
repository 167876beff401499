/// One window of a strided perplexity evaluation: the ids fed to the model and how many of the
/// last positions are scored (the rest is context already scored by an earlier window).
public struct TokenWindow: Sendable, Equatable {
  /// Offset of the first id of `ids` in the whole token stream.
  public var start: Int
  public var ids: ArraySlice<Int>
  /// Number of trailing targets scored in this window.
  public var scoredCount: Int

  /// Index in `ids` of the first position whose next-token prediction is scored.
  public var firstScoredPosition: Int { ids.count - 1 - scoredCount }
}

/// The sliding windows of Hugging Face's strided perplexity: windows of `context` ids starting
/// every `stride` ids, each scoring only the targets no earlier window scored. With
/// `stride == context` the windows are the reference's disjoint chunks (`np_llm.py --ppl`), whose
/// first ids have no context and are not scored; a smaller stride scores them with overlap.
public struct TokenWindows: Sequence, Sendable {
  public let ids: [Int]
  public let context: Int
  public let stride: Int

  /// - Throws: `TextDataError.invalidWindow` unless `0 < stride <= context` and `context >= 2`.
  public init(ids: [Int], context: Int, stride: Int? = nil) throws {
    let stride = stride ?? context
    guard context >= 2, stride > 0, stride <= context else {
      throw TextDataError.invalidWindow(context: context, stride: stride)
    }
    self.ids = ids
    self.context = context
    self.stride = stride
  }

  public func makeIterator() -> AnyIterator<TokenWindow> {
    var start = 0
    var scoredUntil = 0  // targets ids[1..<scoredUntil+1] already scored, counted as positions
    let ids = self.ids
    let context = self.context
    let stride = self.stride
    return AnyIterator {
      guard ids.count >= 2, scoredUntil < ids.count - 1 else { return nil }
      let end = Swift.min(start + context, ids.count)
      // Targets are ids[start+1 ..< end]; score those beyond `scoredUntil`.
      let firstTarget = Swift.max(start + 1, scoredUntil + 1)
      let window = TokenWindow(start: start, ids: ids[start..<end], scoredCount: end - firstTarget)
      scoredUntil = end - 1
      start += stride
      return window
    }
  }

  /// Number of targets scored over all windows.
  public var scoredTargetCount: Int { reduce(0) { $0 + $1.scoredCount } }
}
