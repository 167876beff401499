#ifndef CHDF5_SHIM_H
#define CHDF5_SHIM_H
#include <hdf5.h>
#include <string.h>

// Several HDF5 constants are macros that expand to H5open() calls or globals,
// which Swift cannot import; these helpers expose them as functions.
static inline unsigned chdf5_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned chdf5_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned chdf5_acc_excl(void) { return H5F_ACC_EXCL; }
static inline hid_t chdf5_p_default(void) { return H5P_DEFAULT; }
static inline hid_t chdf5_s_all(void) { return H5S_ALL; }
static inline hid_t chdf5_p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t chdf5_p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t chdf5_t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t chdf5_t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t chdf5_t_native_int8(void) { return H5T_NATIVE_INT8; }
static inline hid_t chdf5_t_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t chdf5_t_native_int16(void) { return H5T_NATIVE_INT16; }
static inline hid_t chdf5_t_native_uint16(void) { return H5T_NATIVE_UINT16; }
static inline hid_t chdf5_t_native_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t chdf5_t_native_uint32(void) { return H5T_NATIVE_UINT32; }
static inline hid_t chdf5_t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t chdf5_t_native_uint64(void) { return H5T_NATIVE_UINT64; }
static inline hid_t chdf5_t_ieee_f16le(void) {
#ifdef H5T_IEEE_F16LE
  return H5T_IEEE_F16LE;
#else
  return -1;
#endif
}
static inline hid_t chdf5_t_c_s1(void) { return H5T_C_S1; }
static inline hid_t chdf5_t_std_u8le(void) { return H5T_STD_U8LE; }

static inline hid_t chdf5_t_std_i8le(void) { return H5T_STD_I8LE; }
static inline hid_t chdf5_t_std_i16le(void) { return H5T_STD_I16LE; }
static inline hid_t chdf5_t_std_i32le(void) { return H5T_STD_I32LE; }
static inline hid_t chdf5_t_std_i64le(void) { return H5T_STD_I64LE; }
static inline hid_t chdf5_t_std_u16le(void) { return H5T_STD_U16LE; }
static inline hid_t chdf5_t_std_u32le(void) { return H5T_STD_U32LE; }
static inline hid_t chdf5_t_std_u64le(void) { return H5T_STD_U64LE; }
static inline hid_t chdf5_t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t chdf5_t_ieee_f64le(void) { return H5T_IEEE_F64LE; }
static inline size_t chdf5_variable_size(void) { return H5T_VARIABLE; }

// Version-dependent calls (H5Oget_info2 became H5Oget_info3 and addresses became tokens in 1.12,
// H5Lget_info became H5Lget_info2), wrapped so the Swift side compiles against either.

// Writes the object's address in its file to `address`; returns a negative value on failure.
static inline herr_t chdf5_object_address(hid_t object, uint64_t *address) {
#if H5_VERSION_GE(1, 12, 0)
  H5O_info2_t info;
  herr_t status = H5Oget_info3(object, &info, H5O_INFO_BASIC);
  if (status < 0) return status;
  uint64_t key = 0;
  memcpy(&key, &info.token, sizeof(key) < sizeof(info.token) ? sizeof(key) : sizeof(info.token));
  *address = key;
  return status;
#else
  H5O_info_t info;
  herr_t status = H5Oget_info2(object, &info, H5O_INFO_BASIC);
  if (status < 0) return status;
  *address = (uint64_t)info.addr;
  return status;
#endif
}

// Writes the number of attributes attached to the object; returns a negative value on failure.
static inline herr_t chdf5_object_attribute_count(hid_t object, uint64_t *count) {
#if H5_VERSION_GE(1, 12, 0)
  H5O_info2_t info;
  herr_t status = H5Oget_info3(object, &info, H5O_INFO_NUM_ATTRS);
#else
  H5O_info_t info;
  herr_t status = H5Oget_info2(object, &info, H5O_INFO_NUM_ATTRS);
#endif
  if (status < 0) return status;
  *count = (uint64_t)info.num_attrs;
  return status;
}

// 1 when the link is a hard link, 0 for soft and external links, negative on failure.
static inline int chdf5_link_is_hard(hid_t group, const char *name) {
#if H5_VERSION_GE(1, 12, 0)
  H5L_info2_t info;
  herr_t status = H5Lget_info2(group, name, &info, H5P_DEFAULT);
#else
  H5L_info_t info;
  herr_t status = H5Lget_info(group, name, &info, H5P_DEFAULT);
#endif
  if (status < 0) return -1;
  return info.type == H5L_TYPE_HARD ? 1 : 0;
}

static inline herr_t chdf5_copy_innermost_error_walk(unsigned n, const H5E_error2_t *error, void *data) {
  // The walk starts at the innermost error, which says what actually went wrong.
  if (n == 0 && error->desc != NULL) {
    char *buffer = (char *)((void **)data)[0];
    size_t capacity = *(size_t *)((void **)data)[1];
    strncpy(buffer, error->desc, capacity - 1);
    buffer[capacity - 1] = 0;
  }
  return 0;
}

// Copies the description of the innermost error on the default stack into `buffer` (empty if none).
static inline void chdf5_innermost_error(char *buffer, size_t capacity) {
  if (capacity == 0) return;
  buffer[0] = 0;
  void *data[2] = {buffer, &capacity};
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, chdf5_copy_innermost_error_walk, data);
}
#endif
