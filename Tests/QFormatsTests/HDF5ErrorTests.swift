import Foundation
import Testing

@testable import QFormats

@Suite("HDF5 errors")
struct HDF5ErrorTests {
  @Test("A text file with an .h5 extension is named as not HDF5")
  func notHDF5() {
    let path = HDF5Fixtures.path("not_hdf5.h5")
    #expect(throws: HDF5Error.notHDF5(path: path)) { try HDF5File(path: path) }
    #expect(HDF5Error.notHDF5(path: path).description == "\(path): not an HDF5 file")
  }

  @Test("A truncated file is reported as truncated, on one line")
  func truncated() {
    let path = HDF5Fixtures.path("truncated.h5")
    let error = #expect(throws: HDF5Error.self) { try HDF5File(path: path) }
    guard case .truncated(let errorPath, _) = error else {
      Issue.record("expected a truncation error, got \(String(describing: error))")
      return
    }
    #expect(errorPath == path)
    let message = error?.description ?? ""
    #expect(message.hasPrefix("\(path): HDF5 file is truncated"))
    #expect(!message.contains("\n"))
  }

  @Test("A missing file is named")
  func missing() {
    let path = HDF5Fixtures.path("does-not-exist.h5")
    #expect(throws: HDF5Error.fileNotFound(path: path)) { try HDF5File(path: path) }
  }

  @Test("An empty file is not HDF5")
  func empty() throws {
    let directory = try HDF5Fixtures.scratchDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("empty.h5").path
    _ = FileManager.default.createFile(atPath: path, contents: Data())
    #expect(throws: HDF5Error.notHDF5(path: path)) { try HDF5File(path: path) }
  }

  @Test("Two objects that map to one tensor name are both named")
  func collision() {
    let path = HDF5Fixtures.path("collision.h5")
    #expect(throws: HDF5Error.nameCollision(path: path, name: "a.b", first: "/a/b", second: "/a.b"))
    {
      try HDF5File(path: path)
    }
  }

  @Test("A writer into a missing directory fails with the file named")
  func writerMissingDirectory() {
    let path = "/nonexistent-directory-for-tests/out.h5"
    let error = #expect(throws: HDF5Error.self) { try HDF5Writer(path: path, metadata: [:]) }
    #expect(error?.description.hasPrefix("\(path): 'H5Fcreate' failed") == true)
    #expect(error?.description.contains("\n") == false)
  }
}
