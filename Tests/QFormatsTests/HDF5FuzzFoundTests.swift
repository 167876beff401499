import Foundation
import Testing

@testable import QFormats

/// HDF5 inputs found by `fuzz-hdf5` that reach defects of libhdf5 1.10 (Debian 12's), kept in
/// `Fixtures/malformed-found/` (see its README).
@Suite struct HDF5FuzzFoundTests {
  static func path(_ name: String) -> String {
    URL(fileURLWithPath: #filePath)
      .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("Fixtures/malformed-found/\(name)").path
  }

  /// Expects opening the fixture `name` to fail with an `HDF5Error` whose one line starts with
  /// the path and satisfies `matches`.
  static func expectOpeningFails(_ name: String, where matches: (String) -> Bool = { _ in true }) {
    let path = path(name)
    #expect {
      _ = try HDF5File(path: path)
    } throws: { error in
      guard let error = error as? HDF5Error else { return false }
      return error.description.hasPrefix(path) && matches(error.description)
    }
  }

  /// An object header whose attribute messages stop decoding part way crashed the process in
  /// `H5Aopen_by_idx` (libhdf5 frees the uninitialised slots of its attribute table in
  /// `H5A__close`); the corrupt message is now met by `H5Aexists`, which fails cleanly.
  @Test func corruptAttributeMessageFailsWithAnError() throws {
    Self.expectOpeningFails("libhdf5_attribute_table.h5") { $0.contains("H5Aexists") }
  }

  /// An attribute message whose inner sizes run past its object header chunk: libhdf5 reads past
  /// its buffer while decoding it (`H5O__msg_iterate_real`), before any check of ours runs. The
  /// worker of `HDF5ChildProbe` meets it first; whether the overread crashes the worker (it does
  /// under AddressSanitizer) or ends in a clean libhdf5 error, opening fails with one line naming
  /// the file, and this process survives.
  @Test func attributeMessageOverreadFailsWithAnError() throws {
    Self.expectOpeningFails("libhdf5_attribute_decode.h5") { !$0.contains("\n") }
  }

  /// A metadata cache entry whose size in the file is 141 GB: libhdf5 asks malloc for it before
  /// checking it against the file's end. Outside AddressSanitizer that malloc fails and libhdf5
  /// reports an error, which must reach the caller as one.
  @Test func hugeCacheEntryFailsWithAnError() throws {
    Self.expectOpeningFails("libhdf5_huge_cache_entry.h5")
  }

  /// A chunked dataset whose chunks (46096 x 8) are larger than the dataset's fixed shape
  /// (64 x 8), one byte changed from `Fixtures/hdf5/basic.h5`: libhdf5 1.10 opens it, and
  /// `H5Dread` copied a chunk's worth of bytes out of a smaller heap buffer. Reading that tensor
  /// now fails with one line naming the file and the dataset; the file's other tensors still read.
  @Test func chunkLargerThanTheDatasetFailsWithAnError() throws {
    try Self.expectOnlyChunkedRefused(
      "libhdf5_chunk_past_dataset.h5", reason: "its chunks [46096, 8] do not fit its maximum shape [64, 8]")
  }

  /// Expects reading the dataset `chunked` of the fixture `name` to fail with `reason`, and every
  /// other tensor of the file (more than ten) to read.
  static func expectOnlyChunkedRefused(_ name: String, reason: String) throws {
    let path = path(name)
    let file = try HDF5File(path: path)
    #expect(throws: HDF5Error.unsupportedDataset(path: path, name: "chunked", reason: reason)) {
      _ = try file.floats(of: "chunked")
    }
    let others = file.tensors.map(\.name).filter { $0 != "chunked" }
    #expect(others.count > 10)
    for other in others {
      #expect(throws: Never.self) { _ = try file.withRawBytes(of: other) { $0.count } }
    }
  }

  /// Chunks of 16 x 512 in a 64 x 8 dataset whose maximum shape claims 64 x 2^52 + 8, two fields
  /// changed from `Fixtures/hdf5/basic.h5`: the chunks fit the maximum shape, and libhdf5 1.10's
  /// `H5Dread` read from past the chunk it inflated. Reading it now fails with one line naming the
  /// dataset; the file's other tensors still read.
  @Test func chunkLargerThanTheDatasetShapeFailsWithAnError() throws {
    try Self.expectOnlyChunkedRefused(
      "libhdf5_chunk_past_shape.h5", reason: "its chunks [16, 512] are larger than its shape [64, 8]")
  }

  /// A one-byte bool enum whose base type claims 20 bytes, one byte changed from
  /// `Fixtures/hdf5/basic.h5`: libhdf5 1.10's `H5Dread` compared its values 20 bytes at a time,
  /// past the one byte each it stores. Such an enum is not read as BOOL but skipped with a reason;
  /// the file's other tensors still read.
  @Test func enumWithALargerBaseTypeIsSkipped() throws {
    let path = Self.path("libhdf5_enum_base_size.h5")
    let file = try HDF5File(path: path)
    #expect(!file.tensors.contains { $0.name == "types.bool" })
    #expect(file.skipped.contains { $0.name == "types.bool" && $0.reason == "enum type" })
    #expect(throws: HDF5Error.unsupportedDataset(path: path, name: "types.bool", reason: "enum type")) {
      _ = try file.floats(of: "types.bool")
    }
    #expect(file.tensors.count > 10)
  }

  /// A compact dataset that stores 0 bytes for its 2-byte shape and type: libhdf5 1.10's
  /// `H5Dread` copied from a null pointer. Reading it now fails with one line naming the dataset.
  @Test func compactDatasetStoringTooLittleFailsWithAnError() throws {
    let path = Self.path("libhdf5_compact_short.h5")
    let file = try HDF5File(path: path)
    #expect(throws: HDF5Error.unsupportedDataset(
      path: path, name: "alpha", reason: "its compact storage holds 0 bytes but its shape and type need 2")
    ) {
      _ = try file.withRawBytes(of: "alpha") { $0.count }
    }
  }
}
