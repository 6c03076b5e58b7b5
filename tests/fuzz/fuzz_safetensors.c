// fuzz_safetensors.c: the checkpoint reader (core/train/checkpoint.c and safetensors_file.c): the whole file into a small model
// (fc.weight (3, 2), fc.bias (3,)), strictly and with extra tensors allowed, and one metadata
// value. Input: the bytes of one .safetensors file.
#include "tests/fuzz/fuzz_common.h"
#include "cgrad.h"

static cg_params *params = NULL; // the model, made once and kept for the whole run
static cg_module *fc = NULL;

static void free_model(void) {
    cg_module_free(fc);
    cg_params_free(params);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (params == NULL) {
        params = cg_params_new(cg_cpu());
        cg_rng init = cg_rng_new(1, CG_STREAM_INIT);
        fc = cg_linear_new(params, "fc", 2, 3, true, &init);
        atexit(free_model);
    }
    fuzz_write("model.safetensors", data, size);
    char path[512];
    snprintf(path, sizeof path, "%s", fuzz_path("model.safetensors"));
    cg_checkpoint_load(params, path);
    cg_checkpoint_load_allow_extra(params, path);
    char value[64];
    cg_checkpoint_read_metadata(path, "model", value, sizeof value);
    return 0;
}
