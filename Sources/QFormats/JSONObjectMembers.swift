import Foundation

/// One object of a JSON file read with its keys exactly as written.
///
/// Foundation's reader returns objects as Swift dictionaries, whose `String` keys merge
/// spellings that are only canonically equal: a 262,144-token vocabulary (Gemma 3's) comes back
/// with fewer entries and some tokens under another's id. This reader keeps every member.
public enum JSONObjectMembers {
  /// The keys and integer values of the object reached by `path` from the root of `data`, in
  /// file order; a value that is not an integer is nil. Nil when `path` leads to no object.
  /// - Throws: `JSONSyntaxProblem` when the bytes on the way are not valid JSON.
  public static func integers(at path: [String], in data: Data) throws -> [(key: String, value: Int?)]? {
    try data.withUnsafeBytes { bytes in
      do throws(HeaderJSONError) {
        return try HeaderJSONParser.members(at: path, in: bytes)?.map { member in
          if case .integer(let value) = member.value { (member.key, value) } else { (member.key, nil) }
        }
      } catch {
        throw JSONSyntaxProblem(error, in: bytes)
      }
    }
  }
}
