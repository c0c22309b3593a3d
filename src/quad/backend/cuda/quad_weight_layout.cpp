// Host side of the QUAD kernels' weight layout (device/quad_linear.h): the repack that runs once
// per layer when a quantized model goes to the GPU. An 8B model has 7 G codes, so it runs over
// OpenMP threads, one 16-row group at a time (each group is its own run of bytes), from int8
// codes or straight from a folder's packed nibbles (no unpacked copy: 460 MB for an 8B gate).
#include <cstring>

#include "quad/backend/cuda/device/quad_linear.h"

namespace quad::cuda {

namespace {

// code(o, k) gives the signed code of row o, column k.
template <class Code>
void prepare(Code code, int N, int K, bool a8_order, uint8_t* packed, int32_t* sums) {
  const int groups = quad_padded_n(N) / 16;
  const size_t group_bytes = size_t(16) * quad_row_bytes(K, 4);
#pragma omp parallel for schedule(dynamic, 8)
  for (int g = 0; g < groups; ++g) {
    std::memset(packed + size_t(g) * group_bytes, 0, group_bytes);  // padding stays zero
    for (int o = g * 16; o < N && o < g * 16 + 16; ++o) {
      int sum = 0;
      for (int k = 0; k < K; ++k) {
        const int q = code(o, k);
        sum += q;
        int shift;
        const size_t pos = quad_weight_offset(o, k, K, a8_order, &shift);
        packed[pos] |= uint8_t((q + 8) << shift);
      }
      sums[o] = sum;
    }
  }
}

}  // namespace

void quad_prepare_weights(const int8_t* codes, int N, int K, bool a8_order, uint8_t* packed,
                          int32_t* sums) {
  prepare([codes, K](int o, int k) { return int(codes[size_t(o) * K + k]); }, N, K, a8_order,
          packed, sums);
}

void quad_prepare_packed_weights(const uint8_t* nibbles, int N, int K, bool a8_order,
                                 uint8_t* packed, int32_t* sums) {
  const size_t row_bytes = size_t(K) / 2;
  prepare(
      [nibbles, row_bytes](int o, int k) {
        const int v = (nibbles[size_t(o) * row_bytes + k / 2] >> (4 * (k & 1))) & 0xF;
        return v >= 8 ? v - 16 : v;  // two's-complement nibble
      },
      N, K, a8_order, packed, sums);
}

}  // namespace quad::cuda
