// test_tensor.c: tensors (new, fill, copy, reshape, first_rows, print, item), the per-step arena
// (alignment, growth, flat high water and repeating addresses over 1000 training steps) and the
// parameter block (growth, alignment, zero_grad). CPU only; op arithmetic is test_grad.c's.
#define _POSIX_C_SOURCE 200809L
#include "cgrad.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void expect_int(const char *what, long long expected, long long got) {
    if (expected != got)
        fail(what, "expected %lld, got %lld", expected, got);
}

static void expect_str(const char *what, const char *expected, const char *got) {
    if (strcmp(expected, got) != 0)
        fail(what, "expected \"%s\", got \"%s\"", expected, got);
}

// ---- tensors -----------------------------------------------------------------------------------

static void test_new_and_shapes(void) {
    cg_tensor *t = cg_tensor_new(cg_cpu(), CG_F32, 3, (int64_t[]){2, 3, 4});
    expect_int("new ndim", 3, t->ndim);
    expect_int("new numel", 24, t->numel);
    expect_int("new shape[2]", 4, t->shape[2]);
    expect_int("new bytes", 96, (long long)cg_tensor_bytes(t));
    expect_int("new owns_data", 1, t->owns_data);
    expect_int("new requires_grad", 0, t->requires_grad);
    if (t->grad != NULL)
        fail("new grad", "expected NULL");
    if (t->dtype != CG_F32 || t->device.type != CG_CPU)
        fail("new", "dtype or device wrong");
    char buf[64];
    expect_str("shape_str", "(2, 3, 4)", cg_shape_str(t, buf, sizeof buf));

    cg_tensor *s = cg_tensor_new(cg_cpu(), CG_F32, 0, NULL); // a scalar
    expect_int("scalar numel", 1, s->numel);
    expect_str("scalar shape_str", "()", cg_shape_str(s, buf, sizeof buf));
    cg_tensor_fill(s, 2.5f);
    if (cg_tensor_item(s) != 2.5f)
        fail("scalar item", "expected 2.5, got %g", (double)cg_tensor_item(s));

    cg_tensor *same = cg_tensor_new(cg_cpu(), CG_I32, 3, (int64_t[]){2, 3, 4});
    cg_tensor *other = cg_tensor_new(cg_cpu(), CG_F32, 2, (int64_t[]){6, 4});
    if (!cg_same_shape(t, same))
        fail("same_shape", "(2, 3, 4) and (2, 3, 4) reported different");
    if (cg_same_shape(t, other))
        fail("same_shape", "(2, 3, 4) and (6, 4) reported equal");
    expect_int("i32 bytes", 96, (long long)cg_tensor_bytes(same));
    expect_int("dtype size bf16", 2, (long long)cg_dtype_size(CG_BF16));
    expect_str("dtype name i8", "i8", cg_dtype_name(CG_I8));
    cg_tensor_free(t);
    cg_tensor_free(s);
    cg_tensor_free(same);
    cg_tensor_free(other);
}

static void test_fill_copy_host(void) {
    cg_tensor *a = cg_tensor_new(cg_cpu(), CG_F32, 2, (int64_t[]){3, 5});
    cg_tensor_fill(a, -1.5f);
    float host[15];
    cg_tensor_copy_to_host(host, a, 15);
    for (int i = 0; i < 15; i++)
        if (host[i] != -1.5f)
            fail("fill f32", "index %d: expected -1.5, got %g", i, (double)host[i]);

    cg_tensor *labels = cg_tensor_new(cg_cpu(), CG_I32, 1, (int64_t[]){7});
    cg_tensor_fill(labels, 3.0f);
    int32_t ih[7];
    cg_tensor_copy_to_host(ih, labels, 7);
    for (int i = 0; i < 7; i++)
        if (ih[i] != 3)
            fail("fill i32", "index %d: expected 3, got %d", i, ih[i]);

    // copy_from_host of part of a tensor leaves the rest alone.
    float src[15];
    for (int i = 0; i < 15; i++)
        src[i] = (float)i * 0.25f;
    cg_tensor_copy_from_host(a, src, 4);
    cg_tensor_copy_to_host(host, a, 15);
    for (int i = 0; i < 15; i++) {
        float expected = i < 4 ? src[i] : -1.5f;
        if (host[i] != expected)
            fail("copy_from_host 4 of 15", "index %d: expected %g, got %g", i, (double)expected, (double)host[i]);
    }
    cg_tensor_copy_from_host(a, src, 15);
    // copy_to_host of part of a tensor writes only that part.
    float part[15];
    for (int i = 0; i < 15; i++)
        part[i] = 99.0f;
    cg_tensor_copy_to_host(part, a, 6);
    for (int i = 0; i < 15; i++) {
        float expected = i < 6 ? src[i] : 99.0f;
        if (part[i] != expected)
            fail("copy_to_host 6 of 15", "index %d: expected %g, got %g", i, (double)expected, (double)part[i]);
    }

    // tensor to tensor, other shape with the same numel
    cg_tensor *b = cg_tensor_new(cg_cpu(), CG_F32, 1, (int64_t[]){15});
    cg_tensor_copy(b, a);
    cg_tensor_copy_to_host(host, b, 15);
    for (int i = 0; i < 15; i++)
        if (host[i] != src[i])
            fail("copy", "index %d: expected %g, got %g", i, (double)src[i], (double)host[i]);
    if (b->data == a->data)
        fail("copy", "the copy shares the source's memory");
    if (cg_tensor_item(a) != src[0])
        fail("item", "expected the first element %g, got %g", (double)src[0], (double)cg_tensor_item(a));
    cg_tensor_free(a);
    cg_tensor_free(b);
    cg_tensor_free(labels);
}

static void test_reshape_first_rows(void) {
    cg_tensor *a = cg_tensor_new(cg_cpu(), CG_F32, 2, (int64_t[]){4, 6});
    float v[24];
    for (int i = 0; i < 24; i++)
        v[i] = (float)i;
    cg_tensor_copy_from_host(a, v, 24);

    cg_tensor *r = cg_tensor_reshape(a, 3, (int64_t[]){2, 3, 4});
    expect_int("reshape ndim", 3, r->ndim);
    expect_int("reshape numel", 24, r->numel);
    expect_int("reshape shape[1]", 3, r->shape[1]);
    expect_int("reshape owns_data", 0, r->owns_data);
    if (r->data != a->data)
        fail("reshape", "data not shared: %p vs %p", r->data, a->data);
    // A write through the reshaped header shows in the original.
    cg_tensor_fill(r, 7.0f);
    float host[24];
    cg_tensor_copy_to_host(host, a, 24);
    for (int i = 0; i < 24; i++)
        if (host[i] != 7.0f)
            fail("reshape shares", "index %d of the original: expected 7, got %g", i, (double)host[i]);
    cg_tensor_free(r); // frees the header only
    cg_tensor_copy_from_host(a, v, 24);

    cg_tensor *f = cg_tensor_first_rows(a, 3);
    expect_int("first_rows shape[0]", 3, f->shape[0]);
    expect_int("first_rows shape[1]", 6, f->shape[1]);
    expect_int("first_rows numel", 18, f->numel);
    if (f->data != a->data)
        fail("first_rows", "data not shared");
    cg_tensor_copy_to_host(host, f, 18);
    for (int i = 0; i < 18; i++)
        if (host[i] != v[i])
            fail("first_rows values", "index %d: expected %g, got %g", i, (double)v[i], (double)host[i]);
    cg_tensor_free(f);
    // The original is still whole after both headers are gone.
    cg_tensor_copy_to_host(host, a, 24);
    if (host[23] != 23.0f)
        fail("after free of views", "index 23: expected 23, got %g", (double)host[23]);
    cg_tensor_free(a);
}

// Run cg_tensor_print with stdout sent to a temporary file, and return what it wrote.
static void capture_print(const cg_tensor *t, const char *label, int max_values, char *out, size_t size) {
    char path[] = "/tmp/cgrad_test_print_XXXXXX";
    int fd = mkstemp(path);
    CG_CHECK(fd >= 0, "mkstemp failed");
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    cg_tensor_print(t, label, max_values);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, out, size - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
}

static void test_print(void) {
    cg_tensor *a = cg_tensor_new(cg_cpu(), CG_F32, 2, (int64_t[]){2, 3});
    cg_tensor_copy_from_host(a, (float[]){1.0f, -2.5f, 0.125f, 4.0f, 5.0f, 6.0f}, 6);
    char text[256];
    capture_print(a, "x", 3, text, sizeof text);
    expect_str("print truncated", "x (2, 3) f32 cpu [1, -2.5, 0.125, ...]\n", text);
    capture_print(a, "x", 10, text, sizeof text);
    expect_str("print whole", "x (2, 3) f32 cpu [1, -2.5, 0.125, 4, 5, 6]\n", text);
    cg_tensor *l = cg_tensor_new(cg_cpu(), CG_I32, 1, (int64_t[]){2});
    cg_tensor_copy_from_host(l, (int32_t[]){7, -1}, 2);
    capture_print(l, "labels", 5, text, sizeof text);
    expect_str("print i32", "labels (2) i32 cpu [7, -1]\n", text);
    capture_print(a, NULL, 0, text, sizeof text);
    expect_str("print no values", "tensor (2, 3) f32 cpu\n", text);
    cg_tensor_free(a);
    cg_tensor_free(l);
}

// ---- the arena ---------------------------------------------------------------------------------

static void test_arena_alignment_and_growth(void) {
    cg_arena *a = cg_arena_new(cg_cpu(), 4096);
    expect_int("arena blocks at start", 1, cg_arena_block_count(a));
    static const size_t sizes[] = {1, 3, 255, 256, 257, 1000, 4, 0, 3000, 5000, 12345, 7};
    enum { N = sizeof sizes / sizeof sizes[0] };
    char *addr[3][N];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            char *p = cg_arena_alloc(a, sizes[i]);
            if ((uintptr_t)p % 256 != 0)
                fail("arena alignment", "round %d allocation %d of %zu bytes at %p", round, i, sizes[i], (void *)p);
            memset(p, 0xab, sizes[i]); // the memory is usable (a sanitizer would see an overrun)
            addr[round][i] = p;
        }
        size_t used = cg_arena_used(a);
        if (round == 0 && cg_arena_block_count(a) < 2)
            fail("arena growth", "%d block(s) after %zu bytes in a 4096-byte arena", cg_arena_block_count(a), used);
        if (used < 4096)
            fail("arena used", "round %d: %zu bytes for these allocations", round, used);
        cg_arena_reset(a);
        expect_int("arena blocks after reset", 1, cg_arena_block_count(a));
        expect_int("arena used after reset", 0, (long long)cg_arena_used(a));
        if (cg_arena_capacity(a) < cg_arena_high_water(a))
            fail("arena capacity", "%zu bytes held, but one step needed %zu", cg_arena_capacity(a),
                 cg_arena_high_water(a));
    }
    // Round 0 ran in the blocks that the first reset merged; from round 1 on the addresses repeat.
    for (int i = 0; i < N; i++)
        if (addr[2][i] != addr[1][i])
            fail("arena addresses", "allocation %d: %p, the round before %p", i, (void *)addr[2][i],
                 (void *)addr[1][i]);
    // Distinct allocations do not overlap: each starts at least its (aligned) size after the last.
    cg_arena_reset(a);
    char *prev = cg_arena_alloc(a, 300);
    char *next = cg_arena_alloc(a, 10);
    if (next - prev < 512)
        fail("arena overlap", "300 bytes at %p, the next allocation at %p", (void *)prev, (void *)next);

    cg_tensor *t = cg_arena_tensor(a, CG_F32, 2, (int64_t[]){3, 7});
    expect_int("arena tensor numel", 21, t->numel);
    if (t->requires_grad || t->grad != NULL || t->owns_data)
        fail("arena tensor", "requires_grad, grad or owns_data set");
    if ((uintptr_t)t->data % 256 != 0)
        fail("arena tensor alignment", "data at %p", t->data);
    cg_arena_free(a);
}

// 1000 steps of a training loop on a fixed batch: Linear(8, 16), ReLU, Linear(16, 1), Sigmoid,
// binary cross-entropy, SGD. After the first step the arena is one block, holds the same
// high-water mark, and every step puts its output at the same address.
static void test_arena_training_steps(void) {
    enum { B = 32, IN = 8, HIDDEN = 16, STEPS = 1000 };
    cg_params *params = cg_params_new(cg_cpu());
    cg_rng init = cg_rng_new(5, CG_STREAM_INIT);
    cg_module *model = cg_sequential_new();
    cg_sequential_add(model, cg_linear_new(params, "fc1", IN, HIDDEN, true, &init));
    cg_sequential_add(model, cg_relu_new());
    cg_sequential_add(model, cg_linear_new(params, "fc2", HIDDEN, 1, true, &init));
    cg_sequential_add(model, cg_sigmoid_new());
    cg_optimizer *opt = cg_optimizer_new(params, cg_sgd_config(0.1f));

    cg_tensor *x = cg_tensor_new(cg_cpu(), CG_F32, 2, (int64_t[]){B, IN});
    cg_tensor *y = cg_tensor_new(cg_cpu(), CG_F32, 1, (int64_t[]){B});
    cg_rng data = cg_rng_new(5, CG_STREAM_DATA);
    float hx[B * IN], hy[B];
    cg_rng_normal(&data, hx, B * IN, 0.0f, 1.0f);
    for (int i = 0; i < B; i++)
        hy[i] = hx[i * IN] + hx[i * IN + 1] > 0.0f ? 1.0f : 0.0f; // learnable
    cg_tensor_copy_from_host(x, hx, B * IN);
    cg_tensor_copy_from_host(y, hy, B);

    // A small arena, so that the first step outgrows it and needs more blocks.
    cg_tape *tape = cg_tape_new(cg_cpu(), 4096);
    size_t high_water = 0, capacity = 0;
    void *loss_at = NULL, *probs_at = NULL;
    float first_loss = 0.0f, last_loss = 0.0f;
    int blocks_first_step = 0, reported = 0;
    for (int step = 1; step <= STEPS; step++) {
        cg_tensor *probs = cg_module_forward(model, tape, x);
        cg_tensor *loss = cg_bce(tape, probs, y);
        cg_optimizer_zero_grad(opt);
        cg_tape_backward(tape, loss);
        cg_optimizer_step(opt);
        float value = cg_tensor_item(loss);
        if (!isfinite(value)) {
            fail("training steps", "step %d: loss %g", step, (double)value);
            break;
        }
        if (step == 1) {
            first_loss = value;
            blocks_first_step = cg_arena_block_count(tape->arena);
        }
        last_loss = value;
        cg_tape_clear(tape);
        if (step == 1) {
            high_water = cg_arena_high_water(tape->arena);
            capacity = cg_arena_capacity(tape->arena);
        } else if (reported < 5) {
            int before = failures;
            if (cg_arena_high_water(tape->arena) != high_water)
                fail("arena high water", "step %d: %zu bytes, after step 1 %zu", step, cg_arena_high_water(tape->arena),
                     high_water);
            if (cg_arena_capacity(tape->arena) != capacity)
                fail("arena capacity", "step %d: %zu bytes, after step 1 %zu", step, cg_arena_capacity(tape->arena),
                     capacity);
            if (cg_arena_block_count(tape->arena) != 1)
                fail("arena blocks", "step %d: %d blocks after the reset", step, cg_arena_block_count(tape->arena));
            // Step 1 ran in the small blocks that the first reset merged; from step 2 on the
            // addresses repeat.
            if (step == 2) {
                loss_at = loss->data;
                probs_at = probs->data;
            } else if (loss->data != loss_at || probs->data != probs_at) {
                fail("arena addresses", "step %d: loss at %p, probabilities at %p; step 2: %p, %p", step, loss->data,
                     probs->data, loss_at, probs_at);
            }
            reported += failures != before;
        }
    }
    if (blocks_first_step < 2)
        fail("arena growth", "the first step used %d block(s) of a 4096-byte arena; expected it to grow",
             blocks_first_step);
    expect_int("arena blocks after the first reset", 1, cg_arena_block_count(tape->arena));
    if (!(last_loss < 0.7f * first_loss))
        fail("training steps", "loss went from %g to %g over %d steps; expected it to fall", (double)first_loss,
             (double)last_loss, STEPS);
    printf("arena: %d steps, high water %zu bytes, %zu bytes held in 1 block, loss %.4f -> %.4f\n", STEPS, high_water,
           capacity, (double)first_loss, (double)last_loss);

    cg_tape_free(tape);
    cg_tensor_free(x);
    cg_tensor_free(y);
    cg_optimizer_free(opt);
    cg_module_free(model);
    cg_params_free(params);
}

// ---- the parameter block -----------------------------------------------------------------------

static void test_params(void) {
    cg_params *p = cg_params_new(cg_cpu());
    cg_tensor *a = cg_params_add(p, "a.weight", 2, (int64_t[]){3, 5}); // 15 floats, padded to 16
    expect_int("params a offset", 0, p->offsets[0]);
    expect_int("params numel after a", 16, p->numel);
    if (!a->requires_grad || a->grad == NULL)
        fail("params add", "a lacks requires_grad or its gradient");
    expect_str("params name", "a.weight", a->name);
    float host[15];
    cg_tensor_copy_to_host(host, a, 15);
    for (int i = 0; i < 15; i++)
        if (host[i] != 0.0f)
            fail("params add", "a[%d] is %g, not zero-initialised", i, (double)host[i]);

    float va[15], ga[15];
    for (int i = 0; i < 15; i++) {
        va[i] = 0.5f * (float)i - 3.0f;
        ga[i] = 100.0f + (float)i;
    }
    cg_tensor_copy_from_host(a, va, 15);
    cg_tensor_copy_from_host(a->grad, ga, 15);
    const float *old_block = p->values;

    // 1200 floats more than the first block of 1024 holds: the block grows and moves.
    cg_tensor *b = cg_params_add(p, "b.weight", 2, (int64_t[]){40, 30});
    if (p->values == old_block)
        printf("params: note: the block did not move when it grew\n");
    if (p->block_floats < p->numel)
        fail("params growth", "%lld floats allocated for %lld", (long long)p->block_floats, (long long)p->numel);
    expect_int("params b offset", 16, p->offsets[1]);
    expect_int("params numel after b", 1216, p->numel);
    expect_int("params count", 15 + 1200, cg_params_count(p));
    if (cg_params_find(p, "a.weight") != a || cg_params_find(p, "b.weight") != b || cg_params_find(p, "c") != NULL)
        fail("params find", "lookup by name is wrong");
    // a's header is the same pointer, now over the new block, with its values and gradient kept.
    if ((float *)a->data != p->values + p->offsets[0] || (float *)a->grad->data != p->grads + p->offsets[0])
        fail("params growth", "a does not point into the new block");
    cg_tensor_copy_to_host(host, a, 15);
    for (int i = 0; i < 15; i++)
        if (host[i] != va[i])
            fail("params growth values", "a[%d]: expected %g, got %g", i, (double)va[i], (double)host[i]);
    cg_tensor_copy_to_host(host, a->grad, 15);
    for (int i = 0; i < 15; i++)
        if (host[i] != ga[i])
            fail("params growth gradients", "a.grad[%d]: expected %g, got %g", i, (double)ga[i], (double)host[i]);
    for (int i = 0; i < p->count; i++) {
        cg_tensor *t = p->tensors[i];
        if (p->offsets[i] % CG_PARAM_ALIGN != 0)
            fail("params alignment", "%s at float offset %lld", t->name, (long long)p->offsets[i]);
        if ((uintptr_t)t->data % 64 != 0 || (uintptr_t)t->grad->data % 64 != 0)
            fail("params alignment", "%s data %p, grad %p not 64-byte aligned", t->name, t->data, t->grad->data);
    }
    // The padding float after a, and b, are zero.
    if (p->values[15] != 0.0f)
        fail("params padding", "float 15 is %g", (double)p->values[15]);
    for (int64_t i = 0; i < b->numel; i++)
        if (((float *)b->data)[i] != 0.0f || ((float *)b->grad->data)[i] != 0.0f) {
            fail("params add", "b[%lld] is not zero", (long long)i);
            break;
        }

    cg_tensor_fill(b->grad, 2.0f);
    cg_params_zero_grad(p);
    for (int64_t i = 0; i < p->numel; i++)
        if (p->grads[i] != 0.0f) {
            fail("params zero_grad", "gradient float %lld is %g", (long long)i, (double)p->grads[i]);
            break;
        }
    cg_tensor_copy_to_host(host, a, 15);
    if (host[14] != va[14])
        fail("params zero_grad", "changed a value: a[14] = %g", (double)host[14]);
    cg_params_free(p);
}

int main(void) {
    test_new_and_shapes();
    test_fill_copy_host();
    test_reshape_first_rows();
    test_print();
    test_arena_alignment_and_growth();
    test_arena_training_steps();
    test_params();
    return check_summary("test_tensor");
}
