// Parameter validation of every op (limits of docs/ops.md), run before any work.
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

#include "internal.h"

namespace dlu_kernels {
namespace {

constexpr int kMaxKernelSize = 15;
constexpr int kMaxScale = 8;

DluStatus invalid(const char* op, const std::string& what)
{
    set_last_error(std::string(op) + ": " + what);
    return DLU_STATUS_INVALID_ARGUMENT;
}

std::string field(const char* name, int64_t value) { return std::string(name) + "=" + std::to_string(value); }

/* Product of positive factors; false when it does not fit in int64. */
bool checked_product(std::initializer_list<int64_t> factors, int64_t* out)
{
    int64_t product = 1;
    for (int64_t f : factors) {
        if (f != 0 && product > std::numeric_limits<int64_t>::max() / f) return false;
        product *= f;
    }
    *out = product;
    return true;
}

DluStatus check_dims(const char* op, int64_t n, int64_t c, int64_t h, int64_t w)
{
    const char* names[] = {"n", "c", "h", "w"};
    const int64_t values[] = {n, c, h, w};
    for (int i = 0; i < 4; ++i) {
        if (values[i] < 1) {
            return invalid(op, field(names[i], values[i]) + " is not allowed: every dimension must be >= 1");
        }
    }
    return DLU_STATUS_OK;
}

DluStatus check_kernel_size(const char* op, int32_t k)
{
    if (k < 1 || k > kMaxKernelSize || k % 2 == 0) {
        return invalid(op, field("kernel_size", k) + " is not allowed: use an odd kernel size between 1 and " +
                               std::to_string(kMaxKernelSize));
    }
    return DLU_STATUS_OK;
}

/* Shared by CARAFE and DLU: kernel size, scale, groups and the size of every tensor. */
DluStatus check_reassembly(const char* op, int64_t n, int64_t c, int64_t h, int64_t w, int32_t k, int32_t group,
                           int32_t scale, int32_t extra_channels_per_group)
{
    DluStatus st = check_dims(op, n, c, h, w);
    if (st != DLU_STATUS_OK) return st;
    if ((st = check_kernel_size(op, k)) != DLU_STATUS_OK) return st;
    if (scale < 1 || scale > kMaxScale) {
        return invalid(op, field("scale", scale) + " is not allowed: use an integer upsampling factor between 1 and " +
                               std::to_string(kMaxScale));
    }
    if (group < 1 || c % group != 0) {
        return invalid(op, field("group", group) + " does not split " + field("c", c) +
                               " into equal groups: use a group count >= 1 that divides the channel count");
    }
    int64_t elements = 0;
    const int64_t s = scale;
    // Output, the kernel/mask tensor and DLU's offsets must all be indexable with int64.
    const bool fits = checked_product({n, c, h, w, s, s}, &elements) &&
                      checked_product({n, group, int64_t{k} * k, h, w, s, s}, &elements) &&
                      checked_product({n, group, extra_channels_per_group, h, w}, &elements);
    if (!fits) {
        return invalid(op, "the tensors of " + field("n", n) + ", " + field("c", c) + ", " + field("h", h) + ", " +
                               field("w", w) + ", " + field("scale", scale) +
                               " have more than 2^63 elements: use smaller shapes");
    }
    return DLU_STATUS_OK;
}

}  // namespace

DluStatus check_dlu(const DluParams* p)
{
    if (p == nullptr) return invalid("DLU", "params is NULL: pass a filled DluParams");
    return check_reassembly("DLU", p->n, p->c, p->h, p->w, p->kernel_size, p->group, p->scale,
                            p->scale >= 1 && p->scale <= kMaxScale ? 2 * p->scale * p->scale : 1);
}

DluStatus check_carafe(const CarafeParams* p)
{
    if (p == nullptr) return invalid("CARAFE", "params is NULL: pass a filled CarafeParams");
    return check_reassembly("CARAFE", p->n, p->c, p->h, p->w, p->kernel_size, p->group, p->scale, 1);
}

DluStatus check_ddf(const DdfParams* p)
{
    const char* op = "DDF";
    if (p == nullptr) return invalid(op, "params is NULL: pass a filled DdfParams");
    DluStatus st = check_dims(op, p->n, p->c, p->h, p->w);
    if (st != DLU_STATUS_OK) return st;
    if ((st = check_kernel_size(op, p->kernel_size)) != DLU_STATUS_OK) return st;
    if (p->dilation < 1) return invalid(op, field("dilation", p->dilation) + " is not allowed: use a dilation >= 1");
    if (p->stride < 1) return invalid(op, field("stride", p->stride) + " is not allowed: use a stride >= 1");
    if (p->combine != 0 && p->combine != 1) {
        return invalid(op, field("combine", p->combine) + " is not known: use 0 (mul) or 1 (add)");
    }
    if (p->h < p->stride || p->w < p->stride) {
        return invalid(op, "a " + std::to_string(p->h) + "x" + std::to_string(p->w) +
                               " input gives an empty output at " + field("stride", p->stride) +
                               ": use inputs at least stride pixels high and wide");
    }
    int64_t elements = 0;
    const int64_t kk = int64_t{p->kernel_size} * p->kernel_size;
    if (!checked_product({p->n, p->c, p->h, p->w}, &elements) || !checked_product({p->n, p->c, kk}, &elements) ||
        !checked_product({p->n, kk, p->h, p->w}, &elements)) {
        return invalid(op, "the tensors of " + field("n", p->n) + ", " + field("c", p->c) + ", " + field("h", p->h) +
                               ", " + field("w", p->w) + " have more than 2^63 elements: use smaller shapes");
    }
    return DLU_STATUS_OK;
}

}  // namespace dlu_kernels
