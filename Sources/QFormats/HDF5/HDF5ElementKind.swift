import CHDF5

/// How a dataset's HDF5 datatype maps onto a `DType`, or why it does not.
enum HDF5ElementKind {
  /// Read through the given native type (integers, f32, f64).
  case native(DType, @Sendable () -> hid_t)
  /// Read through the file's type in little-endian order (f16, bf16-like and 8-bit floats, bool).
  case fileType(DType)
  case unsupported(String)

  /// Floating-point layouts we recognise: size, sign position, exponent position and size,
  /// mantissa position and size, exponent bias.
  private static let floatLayouts: [(dtype: DType, size: Int, fields: [Int], bias: Int)] = [
    (.f64, 8, [63, 52, 11, 0, 52], 1023),
    (.f32, 4, [31, 23, 8, 0, 23], 127),
    (.f16, 2, [15, 10, 5, 0, 10], 15),
    (.bf16, 2, [15, 7, 8, 0, 7], 127),
    (.f8E4M3, 1, [7, 3, 4, 0, 3], 7),
    (.f8E5M2, 1, [7, 2, 5, 0, 2], 15),
  ]

  /// The corresponding C functions are `H5Tget_class`, `H5Tget_size`, `H5Tget_fields` and `H5Tget_ebias`.
  init(type: HDF5Object, context: HDF5Context) throws(HDF5Error) {
    let typeClass = H5Tget_class(type.id)
    let size = H5Tget_size(type.id)
    switch typeClass {
    case H5T_INTEGER:
      let signed = H5Tget_sign(type.id) == H5T_SGN_2
      guard H5Tget_precision(type.id) == size * 8, H5Tget_offset(type.id) == 0 else {
        self = .unsupported(
          "integer with \(H5Tget_precision(type.id)) significant bits in \(size) bytes")
        return
      }
      switch (size, signed) {
      case (1, true): self = .native(.i8, chdf5_t_native_int8)
      case (2, true): self = .native(.i16, chdf5_t_native_int16)
      case (4, true): self = .native(.i32, chdf5_t_native_int32)
      case (8, true): self = .native(.i64, chdf5_t_native_int64)
      case (1, false): self = .native(.u8, chdf5_t_native_uint8)
      case (2, false): self = .native(.u16, chdf5_t_native_uint16)
      case (4, false): self = .native(.u32, chdf5_t_native_uint32)
      case (8, false): self = .native(.u64, chdf5_t_native_uint64)
      default: self = .unsupported("\(size)-byte integer")
      }
    case H5T_FLOAT:
      var spos = 0
      var epos = 0
      var esize = 0
      var mpos = 0
      var msize = 0
      try context.check(
        "H5Tget_fields", H5Tget_fields(type.id, &spos, &epos, &esize, &mpos, &msize))
      let bias = H5Tget_ebias(type.id)
      let fields = [spos, epos, esize, mpos, msize]
      guard
        let layout = Self.floatLayouts.first(where: {
          $0.size == size && $0.fields == fields && $0.bias == bias
        }),
        H5Tget_precision(type.id) == size * 8, H5Tget_offset(type.id) == 0
      else {
        self = .unsupported(
          "\(size)-byte float with sign bit \(spos), exponent \(esize) bits at \(epos), "
            + "mantissa \(msize) bits at \(mpos), bias \(bias)")
        return
      }
      switch layout.dtype {
      case .f64: self = .native(.f64, chdf5_t_native_double)
      case .f32: self = .native(.f32, chdf5_t_native_float)
      default: self = .fileType(layout.dtype)
      }
    case H5T_ENUM:
      self =
        try Self.isBoolEnum(type, context: context) ? .fileType(.bool) : .unsupported("enum type")
    case H5T_STRING: self = .unsupported("string data")
    case H5T_COMPOUND: self = .unsupported("compound type")
    case H5T_VLEN: self = .unsupported("variable-length data")
    case H5T_ARRAY: self = .unsupported("array type")
    case H5T_OPAQUE: self = .unsupported("opaque type")
    case H5T_REFERENCE: self = .unsupported("reference type")
    case H5T_BITFIELD: self = .unsupported("bitfield type")
    default: self = .unsupported("datatype class \(typeClass.rawValue)")
    }
  }

  /// Whether the enum is h5py's spelling of numpy bool: one byte over a one-byte base type,
  /// `FALSE` = 0 and `TRUE` = 1.
  ///
  /// The base type's size is checked too: libhdf5 creates an enum as large as its base, but reads
  /// one whose base is larger from a file, stores each value at the enum's size, and 1.10's
  /// `H5Dread` then compares values at the base's size when it looks up the conversion (`H5T_cmp`),
  /// past the values it stored (`Fixtures/malformed-found/libhdf5_enum_base_size.h5`: a 20-byte base).
  /// The corresponding C functions are `H5Tget_super`, `H5Tget_nmembers`, `H5Tget_member_name`
  /// and `H5Tget_member_value`.
  static func isBoolEnum(_ type: HDF5Object, context: HDF5Context) throws(HDF5Error) -> Bool {
    guard H5Tget_size(type.id) == 1, H5Tget_nmembers(type.id) == 2 else { return false }
    let base = try context.open("H5Tget_super", H5Tget_super(type.id))
    guard H5Tget_size(base.id) == 1 else { return false }
    var members: [String: Int8] = [:]
    for index in UInt32(0)..<2 {
      guard let cName = H5Tget_member_name(type.id, index) else { return false }
      let name = String(cString: cName)
      H5free_memory(cName)
      var value: Int8 = 0
      try context.check("H5Tget_member_value", H5Tget_member_value(type.id, index, &value))
      members[name] = value
    }
    return members == ["FALSE": 0, "TRUE": 1]
  }
}
