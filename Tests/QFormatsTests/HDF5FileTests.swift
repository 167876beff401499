import Foundation
import Synchronization
import Testing

@testable import QFormats

@Suite("HDF5 reader")
struct HDF5FileTests {
  static let fixtures = ["basic.h5", "keras2.h5", "keras3.weights.h5", "track_order.h5"]

  @Test("Reads h5py fixtures bit for bit", arguments: fixtures)
  func readsFixture(_ name: String) throws {
    let expected = try HDF5Fixtures.expected(for: name)
    let file = try HDF5File(path: HDF5Fixtures.path(name))
    #expect(file.tensors.map(\.name) == expected.tensors.map(\.name))
    #expect(file.skipped.map(\.name) == expected.skipped)
    #expect(file.metadata == expected.metadata)
    for tensor in expected.tensors {
      let info = try #require(file.info(named: tensor.name))
      #expect(info.dtype.rawValue == tensor.dtype, "\(tensor.name)")
      #expect(info.shape == tensor.shape, "\(tensor.name)")
      let bytes = try file.withRawBytes(of: tensor.name) { Array($0) }
      #expect(bytes == tensor.bytes, "\(tensor.name)")
    }
  }

  @Test("Keras 2 and Keras 3 layouts keep their link names")
  func kerasNames() throws {
    let keras2 = try HDF5File(path: HDF5Fixtures.path("keras2.h5"))
    #expect(keras2.info(named: "model_weights.dense.dense.kernel:0")?.shape == [4, 3])
    #expect(keras2.metadata["model_weights.layer_names"] == #"["dense", "dense_1"]"#)
    let keras3 = try HDF5File(path: HDF5Fixtures.path("keras3.weights.h5"))
    #expect(keras3.info(named: "layers.dense.vars.0")?.shape == [4, 3])
    #expect(keras3.info(named: "optimizer.vars.0")?.shape == [])
  }

  @Test("Non-numeric datasets are listed as skipped with a reason")
  func skippedReasons() throws {
    let file = try HDF5File(path: HDF5Fixtures.path("basic.h5"))
    let reasons = Dictionary(uniqueKeysWithValues: file.skipped.map { ($0.name, $0.reason) })
    #expect(reasons["notes"] == "string data")
    #expect(reasons["records"] == "compound type")
    #expect(reasons["ragged"] == "variable-length data")
    #expect(
      throws: HDF5Error.unsupportedDataset(
        path: HDF5Fixtures.path("basic.h5"), name: "notes", reason: "string data")
    ) {
      try file.withRawBytes(of: "notes") { $0.count }
    }
    #expect(throws: HDF5Error.noSuchTensor(path: HDF5Fixtures.path("basic.h5"), name: "missing")) {
      try file.withRawBytes(of: "missing") { $0.count }
    }
  }

  @Test("Concurrent reads return the same bytes as serial reads")
  func concurrentReads() throws {
    let file = try HDF5File(path: HDF5Fixtures.path("basic.h5"))
    let names = file.tensors.map(\.name)
    let serial = try names.map { name in try file.withRawBytes(of: name) { Array($0) } }
    let results = Mutex<[Int: [UInt8]]>([:])
    DispatchQueue.concurrentPerform(iterations: names.count * 8) { index in
      let position = index % names.count
      let bytes = try? file.withRawBytes(of: names[position]) { Array($0) }
      results.withLock { $0[index] = bytes }
    }
    let collected = results.withLock { $0 }
    for index in 0..<(names.count * 8) {
      #expect(collected[index] == serial[index % names.count], "\(names[index % names.count])")
    }
  }
}
