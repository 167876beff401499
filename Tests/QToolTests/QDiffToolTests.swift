import Foundation
import QCompute
import QFormats
import Testing

/// End-to-end runs of `qdiff` against numpy's metrics stored beside the fixtures.
@Suite struct QDiffToolTests {
  let diff = fixturesDirectory.appendingPathComponent("diff")

  func path(_ name: String) -> String { diff.appendingPathComponent(name).path }

  func json(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
  }

  func expected() throws -> [String: Any] {
    try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: diff.appendingPathComponent("expected.json")))
        as? [String: Any])
  }

  func close(_ a: Any?, _ b: Any?, _ what: String) {
    let x = (a as? NSNumber)?.doubleValue
    let y = (b as? NSNumber)?.doubleValue
    #expect((x == nil) == (y == nil), "\(what): \(String(describing: a)) against \(String(describing: b))")
    guard let x, let y else { return }
    #expect(abs(x - y) <= 1e-9 * max(abs(y), 1e-300) || x == y, "\(what): \(x) against numpy \(y)")
  }

  @Test func identicalInputsExit0() throws {
    let model = path("old")
    let run = try runTool("qdiff", [model, model])
    #expect(run.status == 0)
    #expect(run.stderr.isEmpty)
    #expect(run.stdout.contains("same (bit for bit)"))
    #expect(!run.stdout.contains("tensors (worst first)"))
    let report = try json(try runTool("qdiff", [model, model, "--format", "json"]).stdout)
    #expect(report["same"] as? Bool == true)
    #expect((report["config"] as? [Any])?.isEmpty == true)
  }

  @Test func classifiesEveryChangeAndAgreesWithNumpy() throws {
    let run = try runTool("qdiff", [path("old"), path("new"), "--format", "json"])
    #expect(run.status == 1)
    #expect(run.stderr.isEmpty)
    let report = try json(run.stdout)
    let reference = try #require(try expected()["old_vs_new"] as? [String: Any])
    let tensors = try #require(report["tensors"] as? [[String: Any]])
    let wanted = try #require(reference["tensors"] as? [[String: Any]])
    #expect(tensors.count == wanted.count)
    for want in wanted {
      let found = tensors.first {
        if let old = want["old_name"] as? String { return $0["old_name"] as? String == old }
        return $0["new_name"] as? String == want["new_name"] as? String && $0["old_name"] == nil
      }
      let entry = try #require(found, "\(want)")
      #expect(entry["status"] as? String == want["status"] as? String, "\(want)")
      #expect(entry["new_name"] as? String == want["new_name"] as? String, "\(want)")
      #expect(entry["renamed_by"] as? String == want["renamed_by"] as? String, "\(want)")
      if want["relative_l2"] != nil {
        let name = want["old_name"] as? String ?? ""
        for key in ["relative_l2", "cosine", "max_abs_diff", "snr_db"] {
          close(entry[key], want[key], "\(name) \(key)")
        }
      } else {
        #expect(entry["relative_l2"] == nil)
      }
    }
    let moves = try #require(report["layer_moves"] as? [[String: Any]])
    let wantedMoves = try #require(reference["layer_moves"] as? [[String: Any]])
    #expect(moves.map { "\($0["stack"] ?? "") \($0["old"] ?? "") \($0["new"] ?? "")" }
      == wantedMoves.map { "\($0["stack"] ?? "") \($0["old"] ?? "") \($0["new"] ?? "")" })
    let config = try #require(report["config"] as? [[String: Any]])
    #expect(Set(config.compactMap { $0["field"] as? String }) == Set(reference["config_fields"] as? [String] ?? []))

    let table = try runTool("qdiff", [path("old"), path("new")])
    #expect(table.status == 1)
    #expect(table.stdout.contains("vocabulary 32 -> 40"))
    #expect(table.stdout.contains("rope theta 10000 -> 500000"))
    #expect(table.stdout.contains("model.layers.2 -> model.layers.3"))
    #expect(table.stdout.contains("model.norm.weight -> language_model.model.norm.weight"))
  }

  @Test(arguments: [("0", Int32(1)), ("1e-6", 1), ("1e-3", 0)])
  func toleranceDecidesWhatCountsAsEqual(tolerance: String, status: Int32) throws {
    let old = path("old/model.safetensors")
    let run = try runTool("qdiff", [old, path("near.safetensors"), "--tolerance", tolerance, "--format", "json"])
    #expect(run.status == status, "\(run.stderr)")
    let reference = try #require(try expected()["old_vs_near"] as? [String: Any])
    let report = try json(run.stdout)
    let tensors = try #require(report["tensors"] as? [[String: Any]])
    let entry = try #require(tensors.first { $0["name"] as? String == reference["tensor"] as? String })
    for key in ["relative_l2", "cosine", "max_abs_diff", "snr_db"] { close(entry[key], reference[key], key) }
    #expect(entry["status"] as? String == (status == 0 ? "equal" : "changed"))
    #expect(tensors.filter { $0["status"] as? String != "equal" }.count == (status == 0 ? 0 : 1))
  }

  @Test func modelAgainstItsPackShowsQuantizationErrorWorstFirst() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("qdiff-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: folder) }
    let model = fixturesDirectory.appendingPathComponent("tiny-llama").path
    let packFolder = folder.appendingPathComponent("pack").path
    let convert = try runTool("qconvert", [model, "-o", packFolder, "--quiet"])
    #expect(convert.status == 0, "\(convert.stderr)")

    let run = try runTool("qdiff", [model, packFolder, "--format", "json"])
    #expect(run.status == 1)
    #expect(run.stderr.isEmpty)
    let report = try json(run.stdout)
    #expect((report["new"] as? [String: Any])?["pack"] as? Bool == true)
    let tensors = try #require(report["tensors"] as? [[String: Any]])
    let original = try Checkpoint.open(model).source
    let stored = try SafetensorsFile(path: packFolder + "/model.safetensors")
    var packed = 0
    for entry in tensors {
      let name = try #require(entry["name"] as? String)
      #expect(entry["old_name"] as? String == name)
      let a = try original.floats(of: name)
      let companions = stored.tensors.filter { $0.name.hasPrefix(name + ".") }
      let b: [Float]
      if companions.isEmpty {
        #expect(entry["status"] as? String == "equal", "\(name)")
        b = try stored.floats(of: name)
      } else {
        packed += 1
        #expect(entry["status"] as? String == "changed", "\(name)")
        let bytes = companions.reduce(0) { $0 + $1.byteCount }
        close(entry["bits_per_weight"], 8 * Double(bytes) / Double(a.count), "\(name) bits per weight")
        let pack = try PackedCheckpoint(wrapping: stored)
        b = try pack.floats(of: name)
      }
      var dd = 0.0, aa = 0.0, bb = 0.0, ab = 0.0, largest = 0.0
      for (x, y) in zip(a.map(Double.init), b.map(Double.init)) {
        dd += (x - y) * (x - y)
        aa += x * x
        bb += y * y
        ab += x * y
        largest = max(largest, abs(x - y))
      }
      close(entry["relative_l2"], dd == 0 ? 0 : (dd / aa).squareRoot(), "\(name) relative L2")
      close(entry["cosine"], ab / (aa.squareRoot() * bb.squareRoot()), "\(name) cosine")
      close(entry["max_abs_diff"], largest, "\(name) max abs")
      close(entry["snr_db"], dd == 0 ? nil : 10 * log10(aa / dd), "\(name) SNR")
    }
    #expect(packed > 0)

    // The table lists the packed tensors worst first, with their bits per weight.
    let table = try runTool("qdiff", [model, packFolder])
    #expect(table.status == 1)
    #expect(table.stdout.contains("bits/w"))
    let order = table.stdout.split(separator: "\n").filter { $0.hasPrefix("  changed ") }
      .map { String($0.split(separator: " ", omittingEmptySubsequences: true)[1]) }
    let worst = tensors.filter { $0["status"] as? String == "changed" }
      .sorted { ($0["relative_l2"] as? Double ?? 0) > ($1["relative_l2"] as? Double ?? 0) }
      .compactMap { $0["name"] as? String }
    #expect(order == worst)
  }

  @Test func jsonlAndTsvHaveOneLinePerTensorAndFilterSelects() throws {
    let args = [path("old"), path("new"), "--filter", #"layers\.0\."#]
    let jsonl = try runTool("qdiff", args + ["--format", "jsonl"])
    #expect(jsonl.status == 1)
    let lines = jsonl.stdout.split(separator: "\n")
    #expect(lines.count == 9)
    for line in lines {
      let object = try json(String(line))
      #expect((object["name"] as? String)?.hasPrefix("model.layers.0.") == true)
    }
    let tsv = try runTool("qdiff", args + ["--format", "tsv"])
    let rows = tsv.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
    #expect(rows.count == 10)
    #expect(rows.first?.hasPrefix("name\tstatus\trenamed_by\told_name\tnew_name\t") == true)
    let columns = rows.first?.split(separator: "\t").count
    #expect(rows.allSatisfy { $0.split(separator: "\t", omittingEmptySubsequences: false).count == columns })
    let equal = try runTool("qdiff", [path("old"), path("new"), "--filter", #"layers\.1\.mlp"#])
    #expect(equal.status == 0)
  }

  @Test(arguments: [
    ["/nonexistent/model.safetensors", "Fixtures/diff/old"],
    ["Fixtures/diff/old", "Fixtures/malformed/end_before_begin.safetensors"],
    ["Fixtures/diff/old"],
    ["Fixtures/diff/old", "Fixtures/diff/new", "--format", "xml"],
    ["Fixtures/diff/old", "Fixtures/diff/new", "--filter", "("],
    ["Fixtures/diff/old", "Fixtures/diff/new", "--tolerance", "-0.5"],
  ])
  func troubleExits2(arguments: [String]) throws {
    let root = fixturesDirectory.deletingLastPathComponent().path + "/"
    let run = try runTool("qdiff", arguments.map { $0.hasPrefix("Fixtures/") ? root + $0 : $0 })
    #expect(run.status == 2)
    #expect(run.stdout.isEmpty)
    #expect(!run.stderr.isEmpty)
  }

  @Test func badInputIsOneLine() throws {
    let run = try runTool("qdiff", ["/nonexistent/a.safetensors", path("old")])
    #expect(run.status == 2)
    #expect(run.stderr.hasPrefix("qdiff: "))
    #expect(run.stderr.split(separator: "\n").count == 1)
  }
}
