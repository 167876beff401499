import Foundation
import Testing

/// A tensor with a NaN or infinite element (Fixtures/diff-nonfinite, made by
/// `Fixtures/make_diff_nonfinite_fixtures.py`) is the worst match, not a perfect one: its metrics
/// are nan in the table and null in JSON, it sorts first, and qdiff exits 1.
@Suite struct QDiffNonFiniteTests {
  static let old = fixturesDirectory.appendingPathComponent("diff-nonfinite/old").path
  static let new = fixturesDirectory.appendingPathComponent("diff-nonfinite/new").path
  static let nonFinite = [
    "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight",
  ]

  @Test func tableShowsNaNAndSortsItWorst() throws {
    let run = try runTool("qdiff", [Self.old, Self.new])
    #expect(run.status == 1, "\(run.stderr)")
    let lines = run.stdout.split(separator: "\n")
    let start = try #require(lines.firstIndex { $0.hasPrefix("tensors (worst first)") })
    let rows = lines[(start + 2)...].map {
      $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
    }
    #expect(rows.count == 3)
    // The two non-finite tensors first, every metric nan; then the finite change.
    for row in rows.prefix(2) {
      #expect(Self.nonFinite.contains(row[1]))
      #expect(Array(row.suffix(4)) == ["nan", "nan", "nan", "nan"])
    }
    #expect(rows.last?[1] == "model.layers.0.mlp.gate_proj.weight")
    #expect(run.stdout.contains("relative L2 nan"))
  }

  @Test func jsonHasNullMetrics() throws {
    let run = try runTool("qdiff", [Self.old, Self.new, "--format", "json"])
    #expect(run.status == 1, "\(run.stderr)")
    let report = try #require(
      try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
    let tensors = try #require(report["tensors"] as? [[String: Any]])
    for tensor in tensors {
      let name = try #require(tensor["name"] as? String)
      if Self.nonFinite.contains(name) {
        for key in ["relative_l2", "cosine", "max_abs_diff", "snr_db"] {
          #expect(tensor[key] is NSNull, "\(name) \(key)")
        }
        #expect(tensor["non_finite"] as? Int == 1)
        #expect(tensor["within_tolerance"] as? Bool == false)
        #expect(tensor["status"] as? String == "changed")
      }
    }
    let summary = try #require(report["summary"] as? [String: Any])
    #expect(summary["relative_l2"] is NSNull)
    #expect(report["same"] as? Bool == false)
  }

  @Test(arguments: ["0.1", "1000"]) func noToleranceCoversANonFinitePair(tolerance: String) throws {
    let run = try runTool("qdiff", [Self.old, Self.new, "--tolerance", tolerance])
    #expect(run.status == 1, "\(run.stderr)")
  }

  /// The same bytes, NaN included, are the same checkpoint.
  @Test func identicalNaNIsTheSame() throws {
    let run = try runTool("qdiff", [Self.new, Self.new, "--format", "json"])
    #expect(run.status == 0, "\(run.stderr)")
    let report = try #require(
      try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
    let summary = try #require(report["summary"] as? [String: Any])
    #expect(summary["relative_l2"] as? Double == 0)
  }
}
