/// Recognises files that are commonly saved or renamed as `.safetensors` but are something
/// else, so the message can say what the file really is.
///
/// Only consulted once the header has already failed to parse, so a valid file whose header
/// length happens to look like a magic number is never misnamed.
enum ForeignFormatSniffer {
  /// A phrase completing "FILE: …", or `nil` when the bytes look like nothing we know.
  static func describe(_ bytes: UnsafeRawBufferPointer) -> String? {
    func starts(with magic: [UInt8], at offset: Int = 0) -> Bool {
      bytes.count >= offset + magic.count && zip(bytes[offset...], magic).allSatisfy { $0 == $1 }
    }
    if starts(with: Array("version https://git-lfs".utf8)) {
      return "is a Git LFS pointer file, not the tensor data; fetch the real file with 'git lfs pull'"
    }
    if starts(with: Array("GGUF".utf8)) {
      return "is a GGUF file, not safetensors"
    }
    if starts(with: [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]) {
      return "is an HDF5 file, not safetensors"
    }
    if starts(with: [0x50, 0x4B, 0x03, 0x04]) || starts(with: [0x50, 0x4B, 0x05, 0x06]) {
      return "is a zip archive (a PyTorch checkpoint?), not safetensors"
    }
    if bytes.count >= 2, bytes[0] == 0x80, (2...5).contains(bytes[1]) {
      return "is a Python pickle (a PyTorch .bin checkpoint?), not safetensors"
    }
    if starts(with: [0x93] + Array("NUMPY".utf8)) {
      return "is a NumPy .npy array, not safetensors"
    }
    // Text formats may start with a byte-order mark or whitespace.
    var start = starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
    while start < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[start]) { start += 1 }
    let lowered = bytes[start..<min(bytes.count, start + 16)].map { $0 | ($0 >= 0x41 && $0 <= 0x5A ? 0x20 : 0) }
    if lowered.starts(with: Array("<!doctype".utf8)) || lowered.starts(with: Array("<html".utf8))
      || lowered.starts(with: Array("<?xml".utf8))
    {
      return "is an HTML page, not safetensors (a download that returned a web page?)"
    }
    if lowered.first == UInt8(ascii: "{") {
      return "is a JSON file, not safetensors (for a shard index, open the index as a sharded checkpoint)"
    }
    return nil
  }
}
