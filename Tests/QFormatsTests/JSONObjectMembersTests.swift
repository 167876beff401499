import Foundation
import Testing

@testable import QFormats

@Suite struct ExactStringTests {
  @Test(arguments: [
    (";", "\u{37E}"),  // semicolon and Greek question mark
    ("\u{E9}", "e\u{301}"),  // precomposed and decomposed é
    ("\u{C5}", "\u{212B}"),  // Å and the Angstrom sign
  ])
  func canonicallyEqualSpellingsStayApart(first: String, second: String) {
    #expect(first == second, "Swift's String calls these equal; the test is about that gap")
    #expect(ExactString(first) != ExactString(second))
    let table: [ExactString: Int] = [ExactString(first): 1, ExactString(second): 2]
    #expect(table.count == 2)
    #expect(table[ExactString(first)] == 1 && table[ExactString(second)] == 2)
  }

  @Test func equalScalarsAreEqualAndHashAlike() {
    let built = String(["a", "\u{301}"].joined())
    #expect(ExactString(built) == ExactString("a\u{301}"))
    #expect(ExactString(built).hashValue == ExactString("a\u{301}").hashValue)
    #expect(ExactString("") == ExactString(""))
    #expect(ExactString("ab") != ExactString("a"))
  }
}

@Suite struct JSONObjectMembersTests {
  func members(_ json: String, _ path: [String]) throws -> [(key: String, value: Int?)]? {
    try JSONObjectMembers.integers(at: path, in: Data(json.utf8))
  }

  @Test func everyKeyIsKeptAsWritten() throws {
    // Foundation's reader returns two members for these four.
    let json = #"{"model":{"vocab":{";":1,"\u037e":2,"é":3,"e\u0301":4}}}"#
    let foundation = try #require(
      (try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["model"] as? [String: Any])
    #expect((foundation["vocab"] as? [String: Any])?.count == 2)
    let read = try #require(try members(json, ["model", "vocab"]))
    #expect(read.map(\.key).map { Array($0.unicodeScalars) } == [";", "\u{37E}", "\u{E9}", "e\u{301}"].map { Array($0.unicodeScalars) })
    #expect(read.map(\.value) == [1, 2, 3, 4])
  }

  @Test func valuesOffThePathAreSkipped() throws {
    let json = #"""
      {"a":"x\"}{[","b":[1,[2,{"c":"]"}]],"n":-1.5e3,"t":true,"z":null,
       "model":{"merges":[["a","b"],"c d"],"vocab":{"k\"ey":7,"f":1.5,"s":"v"}}}
      """#
    let read = try #require(try members(json, ["model", "vocab"]))
    #expect(read.map(\.key) == [#"k"ey"#, "f", "s"])
    #expect(read.map(\.value) == [7, nil, nil])
  }

  @Test func repeatedKeysAreAllKept() throws {
    let read = try #require(try members(#"{"v":{"a":1,"a":2}}"#, ["v"]))
    #expect(read.map(\.value) == [1, 2])
  }

  @Test(arguments: [
    (#"{"model":{}}"#, ["model", "vocab"]),
    (#"{"model":{"vocab":[["a",1]]}}"#, ["model", "vocab"]),
    (#"[1,2]"#, ["model"]),
    (#"{"model":3}"#, ["model", "vocab"]),
  ])
  func noObjectAtThePathIsNil(json: String, path: [String]) throws {
    #expect(try members(json, path) == nil)
  }

  @Test func anEmptyPathIsTheRoot() throws {
    #expect(try members(#" {"x":0} "#, [])?.map(\.key) == ["x"])
  }

  @Test(arguments: [#"{"model":{"vocab":{"a":1"#, #"{"skip":"unterminated"#, #"{"skip":[1,2"#, ""])
  func truncatedJSONThrowsItsProblem(json: String) throws {
    #expect {
      try members(json, ["model", "vocab"])
    } throws: { error in
      (error as? JSONSyntaxProblem)?.truncated == true
    }
  }
}
