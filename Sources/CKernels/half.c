// 16-bit float rows: widening and row dot products, vector (AVX2 + F16C) and scalar.
#include <string.h>

#include "CKernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QK_X86 1
#define QK_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

static inline float qk_f16(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t mantissa = h & 0x3FFu;
  uint32_t bits;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float.
    float magnitude = (float)mantissa * 5.9604644775390625e-08f;
    return sign ? -magnitude : magnitude;
  } else if (exponent == 31) {
    bits = sign | 0x7F800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  }
  float value;
  memcpy(&value, &bits, sizeof value);
  return value;
}

static inline float qk_bf16(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float value;
  memcpy(&value, &bits, sizeof value);
  return value;
}

static inline float qk_half(uint16_t h, int is_bf16) { return is_bf16 ? qk_bf16(h) : qk_f16(h); }

static void qk_half_to_float_scalar(const uint16_t *source, float *target, size_t count, int is_bf16) {
  for (size_t i = 0; i < count; i++) target[i] = qk_half(source[i], is_bf16);
}

void qk_half_rows_dot_scalar(
  const uint16_t *weight, int is_bf16, size_t columns, size_t row_begin, size_t row_end,
  const float *x, size_t tokens, float *out, size_t out_stride) {
  for (size_t row = row_begin; row < row_end; row++) {
    const uint16_t *w = weight + row * columns;
    for (size_t t = 0; t < tokens; t++) {
      const float *xt = x + t * columns;
      float sum = 0;
      for (size_t c = 0; c < columns; c++) sum += qk_half(w[c], is_bf16) * xt[c];
      out[t * out_stride + row] = sum;
    }
  }
}

#ifdef QK_X86
/// Eight 16-bit floats at `source` widened to floats.
QK_AVX2 static inline __m256 qk_load8(const uint16_t *source, int is_bf16) {
  __m128i half = _mm_loadu_si128((const __m128i *)source);
  if (is_bf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(half), 16));
  return _mm256_cvtph_ps(half);
}

QK_AVX2 static inline float qk_sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/// F16C quiets a signalling NaN; the scalar widening keeps every NaN's bits, so eight halves
/// holding a NaN are widened by it.
QK_AVX2 static void qk_half_to_float_avx2(const uint16_t *source, float *target, size_t count, int is_bf16) {
  const __m128i magnitude = _mm_set1_epi16(0x7FFF), infinity = _mm_set1_epi16(0x7C00);
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    if (!is_bf16) {
      __m128i half = _mm_loadu_si128((const __m128i *)(source + i));
      // Magnitudes above infinity's are NaN; as signed 16-bit they compare correctly.
      if (_mm_movemask_epi8(_mm_cmpgt_epi16(_mm_and_si128(half, magnitude), infinity))) {
        for (size_t k = i; k < i + 8; k++) target[k] = qk_f16(source[k]);
        continue;
      }
    }
    _mm256_storeu_ps(target + i, qk_load8(source + i, is_bf16));
  }
  for (; i < count; i++) target[i] = qk_half(source[i], is_bf16);
}

/// Two rows at a time share each load of `x`; four sums per row keep the FMA units busy.
QK_AVX2 static void qk_half_rows_dot_avx2(
  const uint16_t *weight, int is_bf16, size_t columns, size_t row_begin, size_t row_end,
  const float *x, size_t tokens, float *out, size_t out_stride) {
  size_t row = row_begin;
  for (; row + 2 <= row_end; row += 2) {
    const uint16_t *w0 = weight + row * columns;
    const uint16_t *w1 = w0 + columns;
    for (size_t t = 0; t < tokens; t++) {
      const float *xt = x + t * columns;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
      size_t c = 0;
      for (; c + 16 <= columns; c += 16) {
        __m256 x0 = _mm256_loadu_ps(xt + c), x1 = _mm256_loadu_ps(xt + c + 8);
        a0 = _mm256_fmadd_ps(qk_load8(w0 + c, is_bf16), x0, a0);
        a1 = _mm256_fmadd_ps(qk_load8(w0 + c + 8, is_bf16), x1, a1);
        b0 = _mm256_fmadd_ps(qk_load8(w1 + c, is_bf16), x0, b0);
        b1 = _mm256_fmadd_ps(qk_load8(w1 + c + 8, is_bf16), x1, b1);
      }
      for (; c + 8 <= columns; c += 8) {
        __m256 x0 = _mm256_loadu_ps(xt + c);
        a0 = _mm256_fmadd_ps(qk_load8(w0 + c, is_bf16), x0, a0);
        b0 = _mm256_fmadd_ps(qk_load8(w1 + c, is_bf16), x0, b0);
      }
      float s0 = qk_sum8(_mm256_add_ps(a0, a1)), s1 = qk_sum8(_mm256_add_ps(b0, b1));
      for (; c < columns; c++) {
        s0 += qk_half(w0[c], is_bf16) * xt[c];
        s1 += qk_half(w1[c], is_bf16) * xt[c];
      }
      out[t * out_stride + row] = s0;
      out[t * out_stride + row + 1] = s1;
    }
  }
  if (row < row_end) {
    const uint16_t *w0 = weight + row * columns;
    for (size_t t = 0; t < tokens; t++) {
      const float *xt = x + t * columns;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      size_t c = 0;
      for (; c + 16 <= columns; c += 16) {
        a0 = _mm256_fmadd_ps(qk_load8(w0 + c, is_bf16), _mm256_loadu_ps(xt + c), a0);
        a1 = _mm256_fmadd_ps(qk_load8(w0 + c + 8, is_bf16), _mm256_loadu_ps(xt + c + 8), a1);
      }
      for (; c + 8 <= columns; c += 8) a0 = _mm256_fmadd_ps(qk_load8(w0 + c, is_bf16), _mm256_loadu_ps(xt + c), a0);
      float s0 = qk_sum8(_mm256_add_ps(a0, a1));
      for (; c < columns; c++) s0 += qk_half(w0[c], is_bf16) * xt[c];
      out[t * out_stride + row] = s0;
    }
  }
}
#endif

void qk_half_to_float(const uint16_t *source, float *target, size_t count, int is_bf16) {
#ifdef QK_X86
  if (qk_cpu_has_avx2()) {
    qk_half_to_float_avx2(source, target, count, is_bf16);
    return;
  }
#endif
  qk_half_to_float_scalar(source, target, count, is_bf16);
}

void qk_half_rows_dot(
  const uint16_t *weight, int is_bf16, size_t columns, size_t row_begin, size_t row_end,
  const float *x, size_t tokens, float *out, size_t out_stride) {
#ifdef QK_X86
  if (qk_cpu_has_avx2()) {
    qk_half_rows_dot_avx2(weight, is_bf16, columns, row_begin, row_end, x, tokens, out, out_stride);
    return;
  }
#endif
  qk_half_rows_dot_scalar(weight, is_bf16, columns, row_begin, row_end, x, tokens, out, out_stride);
}
