/*
 * Per-element index math of the reassembly shared by CARAFE and DLU (docs/ops.md#carafe,
 * docs/ops.md#dlu), for the CPU and CUDA kernels alike.
 */
#ifndef DLU_REASSEMBLY_MATH_H
#define DLU_REASSEMBLY_MATH_H

#include "dlu_common.h"

namespace dlu_kernels {

/* Group of channel c when `channels` channels are split into `group` equal groups. */
DLU_HD int64_t group_of_channel(int64_t c, int64_t channels, int64_t group) { return c / (channels / group); }

/* Channel of tap t (= ky*k + kx) of group g in a [N, G*k*k, ...] kernel or mask tensor. */
DLU_HD int64_t tap_channel(int64_t g, int k, int t) { return g * k * k + t; }

/* Low-res row (column) read by tap row ky (column kx) of the window of parent py (px). */
DLU_HD int64_t window_coord(int64_t parent, int tap, int k) { return parent + tap - (k - 1) / 2; }

}  // namespace dlu_kernels

#endif  // DLU_REASSEMBLY_MATH_H
