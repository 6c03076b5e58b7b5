// test_hostile_files.c: files made by someone who means harm, or planted where cgrad reads and
// writes: a JPEG whose scans use Huffman tables it never defines, PNGs with a bad CRC or an empty
// IDAT chunk, links planted at the names of temporary files, stale temporary files of ended runs,
// named pipes in place of a checkpoint or a data set's text files, and names holding terminal
// control sequences. Each must be refused in one line naming the file, or handled safely; none may
// crash, hang or touch another file. CPU only; the files are written in a temporary folder.
#define _POSIX_C_SOURCE 200809L
#include "cgrad.h"
#include "core/safe_file.h"
#include "datasets/image_decode.h"
#include "tests/dataset_files.h"

#include <signal.h>
#include <sys/wait.h>
#include <zlib.h>

// ---- small files made by hand ---------------------------------------------------------------------

// A PNG chunk: length, type, data, CRC-32 of type and data (PNG specification 5.3).
static size_t png_chunk(uint8_t *out, const char *type, const uint8_t *data, uint32_t len) {
    put_be32(out, len);
    memcpy(out + 4, type, 4);
    if (len) memcpy(out + 8, data, len);
    put_be32(out + 8 + len, (uint32_t)crc32(crc32(0L, Z_NULL, 0), out + 4, len + 4));
    return 12 + len;
}

// A 4 x 3 RGB PNG of pixel (10 + x, 20 + y, 30) into buf (4096 bytes); with empty_idat, a
// zero-length IDAT chunk comes before the one with the data. Returns its length.
static size_t make_png(uint8_t *buf, bool empty_idat) {
    uint8_t raw[3 * (1 + 12)];
    for (int y = 0; y < 3; y++) {
        raw[y * 13] = 0; // filter type None
        for (int x = 0; x < 4; x++) {
            raw[y * 13 + 1 + 3 * x] = (uint8_t)(10 + x);
            raw[y * 13 + 2 + 3 * x] = (uint8_t)(20 + y);
            raw[y * 13 + 3 + 3 * x] = 30;
        }
    }
    uint8_t z[256];
    uLongf zlen = sizeof z;
    if (compress(z, &zlen, raw, sizeof raw) != Z_OK) exit(1);
    uint8_t ihdr[13] = {0, 0, 0, 4, 0, 0, 0, 3, 8, 2, 0, 0, 0}; // 4 x 3, 8 bits, RGB
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    memcpy(buf, sig, 8);
    size_t n = 8;
    n += png_chunk(buf + n, "IHDR", ihdr, 13);
    if (empty_idat) n += png_chunk(buf + n, "IDAT", NULL, 0);
    n += png_chunk(buf + n, "IDAT", z, (uint32_t)zlen);
    n += png_chunk(buf + n, "IEND", NULL, 0);
    return n;
}

// A JPEG marker segment: FF marker, length (2 bytes, itself included), body.
static size_t jpeg_segment(uint8_t *out, uint8_t marker, const uint8_t *body, size_t len) {
    out[0] = 0xFF;
    out[1] = marker;
    out[2] = (uint8_t)((len + 2) >> 8);
    out[3] = (uint8_t)(len + 2);
    memcpy(out + 4, body, len);
    return 4 + len;
}

// A 16 x 16 greyscale JPEG (frame marker sof: 0xC0 baseline, 0xC2 progressive) with a
// quantisation table and scans, but no Huffman table (DHT) at all: its scans name DC table 2 and
// AC table 3, which stb_image would read uninitialised. Returns its length (buf: 1024 bytes).
static size_t make_jpeg_without_dht(uint8_t *buf, uint8_t sof) {
    size_t n = 0;
    buf[n++] = 0xFF, buf[n++] = 0xD8; // SOI
    uint8_t dqt[65] = {0};
    for (int i = 1; i < 65; i++) dqt[i] = 1;
    n += jpeg_segment(buf + n, 0xDB, dqt, sizeof dqt);
    const uint8_t frame[9] = {8, 0, 16, 0, 16, 1, 1, 0x11, 0}; // 8 bits, 16 x 16, one component
    n += jpeg_segment(buf + n, sof, frame, sizeof frame);
    const uint8_t scan_dc[6] = {1, 1, 0x23, 0, sof == 0xC2 ? 0 : 63, 0};
    n += jpeg_segment(buf + n, 0xDA, scan_dc, sizeof scan_dc);
    for (int i = 0; i < 200; i++) buf[n++] = (uint8_t)(0x12 + 0x35 * i); // entropy-coded bytes, no 0xFF
    if (sof == 0xC2) {
        const uint8_t scan_ac[6] = {1, 1, 0x23, 1, 63, 0};
        n += jpeg_segment(buf + n, 0xDA, scan_ac, sizeof scan_ac);
        for (int i = 0; i < 200; i++) buf[n++] = (uint8_t)(0x21 + 0x53 * i);
    }
    for (size_t i = 0; i < n; i++) // no stray 0xFF in the made-up scan data
        if (i > 2 && buf[i] == 0xFF && buf[i + 1] == 0xFF) buf[i] = 0x7F;
    buf[n++] = 0xFF, buf[n++] = 0xD9; // EOI
    return n;
}

// A folder root/name/cls/ holding a.png (a good 4 x 3 image) and the given second file.
static char *folder_with(const char *name, const char *file, const uint8_t *data, size_t len, char **file_path) {
    char *root = fresh_dir(name);
    char *cls = path_of(root, "cls");
    make_dirs(cls);
    uint8_t png[4096];
    size_t plen = make_png(png, false);
    char *good = path_of(cls, "a.png");
    write_file(good, png, plen);
    *file_path = path_of(cls, file);
    write_file(*file_path, data, len);
    free(good);
    free(cls);
    return root;
}

// Fails unless message is one line free of control characters.
static void expect_clean_line(const char *what, const char *message) {
    for (const unsigned char *p = (const unsigned char *)message; *p; p++)
        if (*p < 0x20 || *p == 0x7F) {
            fail(what, "the message holds control character 0x%02X: %s", *p, message);
            return;
        }
}

// ---- a JPEG that never defines its Huffman tables; PNG checks ------------------------------------

static void test_images(void) {
    printf("JPEG scans without Huffman tables, PNG CRC and empty IDAT\n");
    uint8_t jpg[1024];
    const uint8_t sofs[2] = {0xC2, 0xC0};
    const char *names[2] = {"progressive JPEG without DHT", "baseline JPEG without DHT"};
    for (int k = 0; k < 2; k++) {
        size_t len = make_jpeg_without_dht(jpg, sofs[k]);
        char *bad;
        char *root = folder_with(k ? "jpeg-baseline-no-dht" : "jpeg-progressive-no-dht", "b.jpg", jpg, len, &bad);
        cg_dataset *d = NULL;
        cg_status s = cg_image_folder_load(root, false, NULL, &d);
        expect_error(s, d, names[k], bad, "Huffman table that no DHT segment defined");
        free(bad);
        free(root);
    }

    // Corrupt scan data in a real baseline JPEG (made by Pillow: tests/fuzz/make_seeds.py): stb_image
    // decodes it to garbage without a word; the scan check refuses it.
    size_t jlen = 0;
    uint8_t *good = read_whole("tests/fuzz/corpus/image/seed-baseline.jpg", &jlen);
    int jw = 0, jh = 0;
    expect_ok(cg_image_probe("seed-baseline.jpg", good, jlen, &jw, &jh), "a good baseline JPEG");
    size_t sos = 0;
    for (size_t i = 0; i + 1 < jlen; i++)
        if (good[i] == 0xFF && good[i + 1] == 0xDA) sos = i;
    size_t data = sos + 2 + ((size_t)good[sos + 2] << 8 | good[sos + 3]); // the scan data starts here
    uint8_t *bad_jpg = malloc(jlen + 8);
    // (a) 12 bytes cut out of the middle of the scan: its data ends before the last block.
    size_t cut_at = data + (jlen - 2 - data) / 2;
    memcpy(bad_jpg, good, cut_at);
    memcpy(bad_jpg + cut_at, good + cut_at + 12, jlen - cut_at - 12);
    cg_status js = cg_image_probe("cut.jpg", bad_jpg, jlen - 12, &jw, &jh);
    if (js.code == CG_OK || (strstr(js.message, "corrupt scan data") == NULL && strstr(js.message, "last block") == NULL))
        fail("JPEG with scan bytes cut out", "expected a refusal, got: %s", js.code == CG_OK ? "success" : js.message);
    else
        printf("  scan bytes cut out: %s\n", js.message);
    // (b) 5 stray bytes between the scan's last block and the end-of-image marker.
    memcpy(bad_jpg, good, jlen - 2);
    memcpy(bad_jpg + jlen - 2, "\x11\x22\x33\x44\x55\xFF\xD9", 7);
    js = cg_image_probe("stray.jpg", bad_jpg, jlen + 5, &jw, &jh);
    if (js.code == CG_OK || strstr(js.message, "bytes follow the scan's last block") == NULL)
        fail("JPEG with stray bytes", "expected a refusal, got: %s", js.code == CG_OK ? "success" : js.message);
    else
        printf("  stray bytes: %s\n", js.message);
    free(bad_jpg);
    free(good);
    // The same in a progressive JPEG: its scans are decoded too (stb_image, given a progressive scan
    // cut short, shifted by negative bit counts).
    good = read_whole("tests/fuzz/corpus/image/seed-progressive.jpg", &jlen);
    expect_ok(cg_image_probe("seed-progressive.jpg", good, jlen, &jw, &jh), "a good progressive JPEG");
    bad_jpg = malloc(jlen);
    size_t longest = 0; // the middle of the longest scan's data (from its SOS to the next marker)
    for (size_t i = 0; i + 3 < jlen; i++)
        if (good[i] == 0xFF && good[i + 1] == 0xDA) {
            size_t start = i + 2 + ((size_t)good[i + 2] << 8 | good[i + 3]), end = start;
            while (end + 1 < jlen && !(good[end] == 0xFF && good[end + 1] != 0x00)) end++;
            if (end - start > longest) longest = end - start, cut_at = start + (end - start) / 2;
        }
    memcpy(bad_jpg, good, cut_at);
    memcpy(bad_jpg + cut_at, good + cut_at + 3, jlen - cut_at - 3);
    js = cg_image_probe("cut-progressive.jpg", bad_jpg, jlen - 3, &jw, &jh);
    if (js.code == CG_OK || strstr(js.message, "scan") == NULL)
        fail("progressive JPEG with scan bytes cut out", "expected a scan data refusal, got: %s",
             js.code == CG_OK ? "success" : js.message);
    else printf("  progressive, scan bytes cut out: %s\n", js.message);
    free(bad_jpg);
    free(good);

    // An empty IDAT chunk (legal) decodes to the right pixels; stb_image alone would do undefined
    // pointer arithmetic on it.
    uint8_t png[4096];
    size_t len = make_png(png, true);
    int w = 0, h = 0;
    if (expect_ok(cg_image_probe("empty-idat.png", png, len, &w, &h), "PNG with an empty IDAT: probe")) {
        uint8_t rgb[3 * 4 * 3];
        if (expect_ok(cg_image_decode_rgb("empty-idat.png", png, len, w, h, rgb), "PNG with an empty IDAT: decode"))
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 4; x++)
                    if (rgb[y * 4 + x] != 10 + x || rgb[12 + y * 4 + x] != 20 + y || rgb[24 + y * 4 + x] != 30)
                        fail("PNG with an empty IDAT", "pixel (%d, %d) is wrong", x, y);
    }
    // A PNG whose only IDAT chunk is empty: refused.
    size_t good_len = make_png(png, false);
    uint8_t *only_empty = malloc(good_len + 64);
    memcpy(only_empty, png, 33); // signature and IHDR
    size_t n = 33;
    n += png_chunk(only_empty + n, "IDAT", NULL, 0);
    n += png_chunk(only_empty + n, "IEND", NULL, 0);
    cg_status s = cg_image_probe("only-empty-idat.png", only_empty, n, &w, &h);
    if (s.code == CG_OK || strstr(s.message, "no IDAT chunk holds image data") == NULL)
        fail("PNG whose IDAT is empty", "expected a refusal, got: %s", s.code == CG_OK ? "success" : s.message);
    free(only_empty);
    // One flipped bit in the compressed data: the CRC says so (stb_image reads no CRC).
    png[45] ^= 0x10;
    s = cg_image_probe("flipped.png", png, good_len, &w, &h);
    if (s.code == CG_OK || strstr(s.message, "flipped.png") == NULL || strstr(s.message, "CRC") == NULL)
        fail("PNG with a flipped bit", "expected a CRC refusal, got: %s", s.code == CG_OK ? "success" : s.message);
    else
        printf("  flipped bit: %s\n", s.message);
}

// ---- temporary files: planted links, stale files of ended runs -------------------------------------

// The pid of a process that has ended (a child that exited and was reaped).
static long dead_pid(void) {
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0);
    return (long)child;
}

static bool is_link(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

static void expect_victim_intact(const char *what, const char *victim) {
    size_t n;
    uint8_t *v = read_whole(victim, &n);
    if (n != 6 || memcmp(v, "victim", 6) != 0) fail(what, "%s was overwritten through a planted link", victim);
    free(v);
}

static void test_temporary_files(void) {
    printf("temporary files: planted links and stale files\n");
    char *root = fresh_dir("cache-links");
    char *cls = path_of(root, "cls");
    make_dirs(cls);
    uint8_t png[4096];
    size_t len = make_png(png, false);
    char *img = path_of(cls, "a.png");
    write_file(img, png, len);
    char *victim = path_of(tmp_root, "victim.txt");
    write_text(victim, "victim");

    // The name the old code opened (PATH.tmp.PID) and a stale file and a link of an ended run.
    char name[256];
    long gone = dead_pid();
    snprintf(name, sizeof name, "%s/.cgrad-cache.bin.tmp.%ld", root, (long)getpid());
    if (symlink(victim, name) != 0) fail("planted link", "cannot make %s", name);
    char stale[256], stale_link[256], live[256];
    snprintf(stale, sizeof stale, "%s/.cgrad-cache.bin.tmp.%ld.abcdef", root, gone);
    write_text(stale, "stale");
    snprintf(stale_link, sizeof stale_link, "%s/.cgrad-cache.bin.tmp.%ld.ghijkl", root, gone);
    if (symlink(victim, stale_link) != 0) fail("planted link", "cannot make %s", stale_link);
    snprintf(live, sizeof live, "%s/.cgrad-cache.bin.tmp.%ld.mnopqr", root, (long)getppid()); // a run still going
    write_text(live, "live");

    cg_dataset *d = NULL;
    bool from_cache = true;
    if (expect_ok(cg_image_folder_load(root, true, &from_cache, &d), "folder with planted links")) {
        cg_dataset_free(d);
        char *cache = path_of(root, ".cgrad-cache.bin");
        struct stat st;
        if (lstat(cache, &st) != 0 || !S_ISREG(st.st_mode)) fail("decode cache", "no regular cache file %s", cache);
        free(cache);
    }
    expect_victim_intact("decode cache", victim);
    if (!is_link(name)) fail("planted link", "%s was replaced or removed", name);
    if (file_exists(stale)) fail("stale cache temporary", "%s (of an ended run) was not removed", stale);
    if (!is_link(stale_link)) fail("stale link", "%s, a link, was removed or replaced", stale_link);
    if (!file_exists(live)) fail("live cache temporary", "%s (of a run still going) was removed", live);

    // The checkpoint writer: the same rules.
    cg_params *p = cg_params_new(cg_cpu());
    cg_rng init = cg_rng_new(1, CG_STREAM_INIT);
    cg_module *fc = cg_linear_new(p, "fc", 2, 3, true, &init);
    char *model = path_of(root, "model.safetensors");
    snprintf(stale, sizeof stale, "%s.tmp.%ld.abcdef", model, gone);
    write_text(stale, "stale");
    snprintf(stale_link, sizeof stale_link, "%s.tmp.%ld.ghijkl", model, gone);
    if (symlink(victim, stale_link) != 0) fail("planted link", "cannot make %s", stale_link);
    snprintf(live, sizeof live, "%s.tmp.%ld.mnopqr", model, (long)getppid());
    write_text(live, "live");
    expect_ok(cg_checkpoint_save(p, model, NULL, 0), "checkpoint save beside stale files");
    if (file_exists(stale)) fail("stale checkpoint temporary", "%s (of an ended run) was not removed", stale);
    if (!is_link(stale_link)) fail("stale checkpoint link", "%s, a link, was removed or replaced", stale_link);
    if (!file_exists(live)) fail("live checkpoint temporary", "%s (of a run still going) was removed", live);
    expect_victim_intact("checkpoint save", victim);
    // A link planted at the checkpoint's own name is replaced, never written through.
    unlink(model);
    if (symlink(victim, model) != 0) fail("planted link", "cannot make %s", model);
    expect_ok(cg_checkpoint_save(p, model, NULL, 0), "checkpoint save over a link");
    expect_victim_intact("checkpoint save over a link", victim);
    // cg_remove_stale_temps never removes what is not its own form.
    snprintf(stale, sizeof stale, "%s.tmp.%ld.toolongname", model, gone);
    write_text(stale, "other");
    cg_remove_stale_temps(model);
    if (!file_exists(stale)) fail("stale temporaries", "%s, not of the form PATH.tmp.PID.XXXXXX, was removed", stale);

    cg_module_free(fc);
    cg_params_free(p);
    free(model);
    free(victim);
    free(img);
    free(cls);
    free(root);
}

// ---- named pipes in place of files ---------------------------------------------------------------

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "FAIL named pipes: a load waited on a named pipe for 20 s\n";
    if (write(2, msg, sizeof msg - 1)) {}
    _exit(1);
}

// Replaces path by a named pipe.
static void make_fifo(const char *path) {
    unlink(path);
    if (mkfifo(path, 0644) != 0) {
        fprintf(stderr, "%s: cannot make the named pipe %s\n", test_program, path);
        exit(1);
    }
}

static void expect_pipe_refused(const char *what, cg_status s, const char *path) {
    if (s.code == CG_OK) {
        fail(what, "a named pipe was accepted");
        return;
    }
    if (strstr(s.message, path) == NULL || strstr(s.message, "named pipe") == NULL)
        fail(what, "the message does not name %s and say 'named pipe': %s", path, s.message);
    else
        printf("  %s: %s\n", what, s.message);
}

static void test_named_pipes(void) {
    printf("named pipes in place of files\n");
    signal(SIGALRM, on_alarm);
    alarm(20); // a hang fails the test instead of stopping the run

    char *dir = fresh_dir("pipes");
    char *ckpt = path_of(dir, "model.safetensors");
    make_fifo(ckpt);
    cg_params *p = cg_params_new(cg_cpu());
    cg_rng init = cg_rng_new(1, CG_STREAM_INIT);
    cg_module *fc = cg_linear_new(p, "fc", 2, 3, true, &init);
    expect_pipe_refused("checkpoint --load", cg_checkpoint_load(p, ckpt), ckpt);
    char value[64];
    expect_pipe_refused("checkpoint metadata", cg_checkpoint_read_metadata(ckpt, "model", value, sizeof value), ckpt);
    cg_module_free(fc);
    cg_params_free(p);

    // CIFAR-10: the class names file.
    char *cifar = path_of(dir, "cifar-10-batches-bin");
    make_dirs(cifar);
    char *batch = path_of(cifar, "test_batch.bin");
    uint8_t record[3073] = {1};
    write_file(batch, record, sizeof record);
    char *meta = path_of(cifar, "batches.meta.txt");
    make_fifo(meta);
    cg_dataset *d = NULL;
    expect_pipe_refused("CIFAR meta file", cg_cifar10_load(cifar, false, &d), meta);
    cg_dataset_free(d);

    // IDX: the images file given by name.
    char *images = path_of(dir, "images-idx3-ubyte"), *labels = path_of(dir, "labels-idx1-ubyte");
    make_fifo(images);
    write_text(labels, "x");
    expect_pipe_refused("IDX images", cg_idx_load_files(images, labels, CG_IDX_MNIST, &d), images);
    cg_dataset_free(d);

    // TinyImageNet: wnids.txt, then val/val_annotations.txt.
    char *tiny = path_of(dir, "tiny");
    char *val_images = path_of(tiny, "val/images");
    make_dirs(val_images);
    char *wnids = path_of(tiny, "wnids.txt");
    make_fifo(wnids);
    expect_pipe_refused("wnids.txt", cg_tinyimagenet_load(tiny, false, false, NULL, &d), wnids);
    unlink(wnids);
    write_text(wnids, "n001\n");
    char *words = path_of(tiny, "words.txt");
    make_fifo(words); // optional: a pipe there must not hang either
    char *ann = path_of(tiny, "val/val_annotations.txt");
    make_fifo(ann);
    expect_pipe_refused("val_annotations.txt", cg_tinyimagenet_load(tiny, false, false, NULL, &d), ann);

    // The decoded cache of an image folder: a pipe there is not read; the images are decoded.
    char *root = fresh_dir("pipes-cache");
    char *cls = path_of(root, "cls");
    make_dirs(cls);
    uint8_t png[4096];
    size_t len = make_png(png, false);
    char *img = path_of(cls, "a.png");
    write_file(img, png, len);
    char *cache = path_of(root, ".cgrad-cache.bin");
    make_fifo(cache);
    if (expect_ok(cg_image_folder_load(root, true, NULL, &d), "a named pipe as the decoded cache")) cg_dataset_free(d);

    alarm(0);
    char *all[] = {ckpt, cifar, batch, meta, images, labels, tiny, val_images, wnids, words, ann, root, cls, img, cache, dir};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
}

// ---- names that hold terminal control sequences ----------------------------------------------------

static void test_escaped_names(void) {
    printf("names holding control characters are escaped\n");
    char out[128];
    cg_escape("a\x1b]0;title\x07\nb", out, sizeof out);
    if (strcmp(out, "a\\x1B]0;title\\x07\\x0Ab") != 0) fail("cg_escape", "control characters: got '%s'", out);
    cg_escape("caf\xc3\xa9 \xe2\x80\xae \xc2\x9b \xff", out, sizeof out); // é, RLO, CSI (C1), a lone byte
    if (strcmp(out, "caf\xc3\xa9 \\xE2\\x80\\xAE \\xC2\\x9B \\xFF") != 0) fail("cg_escape", "UTF-8: got '%s'", out);
    cg_escape("abc\x01", out, 6); // cut short rather than half an escape
    if (strcmp(out, "abc") != 0) fail("cg_escape", "short buffer: got '%s'", out);

    // A checkpoint whose tensor name sets the terminal's title and clears the screen.
    char *dir = fresh_dir("escape");
    char *path = path_of(dir, "evil.safetensors");
    const char *header = "{\"\\u001b]0;pwned\\u0007\\u001b[2J\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    size_t hlen = strlen(header);
    uint8_t *file = calloc(1, 8 + hlen + 4);
    file[0] = (uint8_t)hlen;
    memcpy(file + 8, header, hlen);
    write_file(path, file, 8 + hlen + 4);
    cg_params *p = cg_params_new(cg_cpu());
    cg_rng init = cg_rng_new(1, CG_STREAM_INIT);
    cg_module *fc = cg_linear_new(p, "fc", 2, 3, true, &init);
    cg_params *none = cg_params_new(cg_cpu()); // no parameters: the file's tensor is the one at fault
    cg_status s = cg_checkpoint_load(none, path);
    cg_params_free(none);
    expect_clean_line("evil tensor name", s.message);
    if (strstr(s.message, "\\x1B]0;pwned\\x07\\x1B[2J") == NULL) fail("evil tensor name", "not escaped: %s", s.message);
    printf("  tensor name: %s\n", s.message);
    // A dtype with a newline in it: one line.
    const char *header2 = "{\"fc.weight\":{\"dtype\":\"F\\n32\",\"shape\":[3,2],\"data_offsets\":[0,24]}}";
    hlen = strlen(header2);
    free(file);
    file = calloc(1, 8 + hlen + 24);
    file[0] = (uint8_t)hlen;
    memcpy(file + 8, header2, hlen);
    write_file(path, file, 8 + hlen + 24);
    s = cg_checkpoint_load(p, path);
    expect_clean_line("dtype with a newline", s.message);
    if (strstr(s.message, "F\\x0A32") == NULL) fail("dtype with a newline", "not escaped: %s", s.message);
    printf("  dtype: %s\n", s.message);
    free(file);
    cg_module_free(fc);
    cg_params_free(p);

    // A wnid with an escape sequence in wnids.txt.
    char *tiny = path_of(dir, "tiny");
    make_dirs(tiny);
    char *wnids = path_of(tiny, "wnids.txt");
    write_text(wnids, "n0\x1b[31mred\n");
    cg_dataset *d = NULL;
    s = cg_tinyimagenet_load(tiny, true, false, NULL, &d);
    expect_error(s, d, "evil wnid", NULL, "\\x1B[31mred");
    expect_clean_line("evil wnid", s.message);
    // A file name with a newline in an image folder.
    char *root = fresh_dir("escape-folder");
    char *cls = path_of(root, "cls");
    make_dirs(cls);
    char *bad = path_of(cls, "evil\n\x1b[2J.png");
    write_text(bad, "not a png");
    s = cg_image_folder_load(root, false, NULL, &d);
    expect_error(s, d, "evil file name", NULL, "not a JPEG");
    expect_clean_line("evil file name", s.message);
    free(bad);
    free(cls);
    free(root);
    free(wnids);
    free(tiny);
    free(path);
    free(dir);
}

int main(void) {
    dataset_test_begin("test_hostile_files");
    test_images();
    test_temporary_files();
    test_named_pipes();
    test_escaped_names();
    return dataset_test_end();
}
