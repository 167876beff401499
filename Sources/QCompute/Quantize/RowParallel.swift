import Dispatch

/// A pointer handed to concurrent row blocks that each write disjoint rows. Sendable on that
/// promise alone: the blocks of `forEachRowBlock` never write the same element.
public struct SendableMutablePointer<Element>: @unchecked Sendable {
  public let pointer: UnsafeMutablePointer<Element>
  public init(_ pointer: UnsafeMutablePointer<Element>) { self.pointer = pointer }
}

/// Runs `body` over blocks of rows, concurrently once the matrix is large enough to pay for it:
/// at least two blocks of `minimumElementsPerBlock` elements. Each row is in exactly one block,
/// so element-wise work gives the same result however the rows are split.
///
/// Only element-wise work belongs here; BLAS calls stay on the calling thread, where OpenBLAS
/// already uses every core.
public func forEachRowBlock(
  rows: Int, elementsPerRow: Int, minimumElementsPerBlock: Int = 1 << 16, _ body: (Range<Int>) -> Void
) {
  guard rows > 0 else { return }
  let elements = rows * max(elementsPerRow, 1)
  guard rows > 1, elements >= 2 * minimumElementsPerBlock else {
    body(0..<rows)
    return
  }
  let blockCount = min(rows, max(2, min(elements / minimumElementsPerBlock, 256)))
  let rowsPerBlock = (rows + blockCount - 1) / blockCount
  let blocks = (rows + rowsPerBlock - 1) / rowsPerBlock
  withoutActuallyEscaping(body) { body in
    let box = UncheckedSendableClosure(body)
    DispatchQueue.concurrentPerform(iterations: blocks) { block in
      let start = block * rowsPerBlock
      box.body(start..<min(rows, start + rowsPerBlock))
    }
  }
}

private struct UncheckedSendableClosure: @unchecked Sendable {
  let body: (Range<Int>) -> Void
  init(_ body: @escaping (Range<Int>) -> Void) { self.body = body }
}
