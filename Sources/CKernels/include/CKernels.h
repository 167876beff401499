#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// 1 when the running CPU has AVX2, FMA and F16C, which the vector paths below use; those
/// paths are compiled for them with target attributes and chosen at run time, so a portable
/// build runs them on a CPU that has them and the scalar paths elsewhere.
int qk_cpu_has_avx2(void);

/// 1 when the running CPU has the AVX-512 subsets of Skylake-X (F, BW, VL, DQ, CD), which
/// OpenBLAS's SkylakeX kernels use.
int qk_cpu_has_avx512_skylakex(void);

/// Widens `count` 16-bit floats to float: IEEE half when `is_bf16` is 0, bfloat16 otherwise.
/// Exact: every half and bfloat16 value is a float.
void qk_half_to_float(const uint16_t *source, float *target, size_t count, int is_bf16);

/// For rows [row_begin, row_end) of the row-major 16-bit matrix `weight` (`columns` wide) and
/// `tokens` input rows `x` (`tokens * columns` floats):
/// `out[t * out_stride + r] = sum_c weight[r, c] * x[t, c]`, weights widened in registers.
void qk_half_rows_dot(
  const uint16_t *weight, int is_bf16, size_t columns, size_t row_begin, size_t row_end,
  const float *x, size_t tokens, float *out, size_t out_stride);
/// The same in plain C, for tests and CPUs without AVX2.
void qk_half_rows_dot_scalar(
  const uint16_t *weight, int is_bf16, size_t columns, size_t row_begin, size_t row_end,
  const float *x, size_t tokens, float *out, size_t out_stride);

/// Columns per chunk of the int8 activation layout for `bits`-bit codes (2, 4 or 8): the
/// columns whose codes fill 32 bytes.
size_t qk_int8_chunk_columns(int bits);

/// Quantizes one row of activations (`columns`, a multiple of 32) to int8 for `bits`-bit
/// codes: per block of 32 columns, `scale = max|x| / 127` and `q = round(x / scale)`, so
/// `|x - scale * q| <= scale / 2`. Within each whole chunk of `qk_int8_chunk_columns(bits)`
/// columns, `q` is stored in the order the codes unpack from 32 bytes (position `j * 32 + k`
/// holds column `k * (8 / bits) + j`); the columns after the last whole chunk keep their order.
/// `block_sums` receives each block's sum of the rounded activations, `scale * sum(q)`.
void qk_quantize_activations(
  const float *x, size_t columns, int bits, int8_t *quantized, float *block_scales, float *block_sums);

/// For rows [row_begin, row_end) of a weight of `bits`-bit LSB-first codes (2, 4 or 8;
/// `bytes_per_row` bytes a row) with per-group `scales` and `offsets` (row-major, `columns /
/// group_size` a row; `group_size` a multiple of 32), and `tokens` rows of activations quantized
/// by `qk_quantize_activations` (`quantized`: `columns` bytes a token, `block_scales`:
/// `columns / 32` a token) with their per-group sums `group_sums` (`columns / group_size` a token):
/// `out[t * out_stride + r] = sum_g s_g * sum_{c in g} code_c * scale_b(c) * q_c + k_g * group_sums_g`,
/// where `k_g = offset` when `offset_is_bias`, `-s_g * offset` otherwise. With the sums of the
/// rounded activations this is the product of the weights with the rounded activations.
void qk_lowbit_rows_dot(
  const uint8_t *codes, size_t bytes_per_row, int bits, size_t columns, size_t group_size,
  const float *scales, const float *offsets, int offset_is_bias, size_t row_begin, size_t row_end,
  const int8_t *quantized, const float *block_scales, const float *group_sums, size_t tokens,
  float *out, size_t out_stride);
/// The same in plain C, for tests and CPUs without AVX2.
void qk_lowbit_rows_dot_scalar(
  const uint8_t *codes, size_t bytes_per_row, int bits, size_t columns, size_t group_size,
  const float *scales, const float *offsets, int offset_is_bias, size_t row_begin, size_t row_end,
  const int8_t *quantized, const float *block_scales, const float *group_sums, size_t tokens,
  float *out, size_t out_stride);

/// Encodes `blocks` blocks of 32 floats as GGUF Q8_0 (34 bytes each: an f16 scale, 32 int8
/// codes) or Q4_0 (18 bytes each: an f16 scale, 16 bytes of 4-bit codes), bit for bit as
/// QCompute's scalar `GGUFBlocks` encoders do. Returns 0, writing nothing, on a CPU without
/// AVX2, FMA and F16C: the caller then runs the scalar encoder.
int qk_encode_q8_0(const float *x, size_t blocks, uint8_t *out);
int qk_encode_q4_0(const float *x, size_t blocks, uint8_t *out);

#endif
