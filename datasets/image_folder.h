// image_folder.h: folders of JPEG / PNG images into a cg_dataset of u8 images (3, H, W): torchvision's
// ImageFolder layout and TinyImageNet-200. Every image must have the same size (no resizing, no
// cropping); grayscale and palette images become RGB. A decoded cache makes a second load fast.
//
// ImageFolder (torchvision.datasets.ImageFolder): root/CLASS/.../IMAGE. The classes are root's
// subfolders sorted by name (byte order, as Python's sorted), label = index in that order; each
// class's images are every .jpg, .jpeg or .png file (any case) under its folder, subfolders
// included, sorted by (folder path, file name) as torchvision's sorted(os.walk(...)). Names that
// start with '.' are skipped (a departure from torchvision, which would make ".git" a class).
// Other image types (.gif, .bmp, .webp, .tif, ...) are an error rather than silently left out;
// files of other extensions (.txt, ...) are ignored. A class without images is an error.
//
// TinyImageNet-200 (http://cs231n.stanford.edu/tiny-imagenet-200.zip, Stanford CS231n):
// root/wnids.txt lists the 200 WordNet ids, one per line, in label order; root/words.txt maps
// "WNID<TAB>synonyms" (names become "n01443537 goldfish": the id and its first synonym; without
// words.txt, the id alone); training images are root/train/WNID/images/*.JPEG (500 per class,
// sorted by name); validation images root/val/images/FILE labelled by root/val/val_annotations.txt
// lines "FILE<TAB>WNID<TAB>x0<TAB>y0<TAB>x1<TAB>y1" (10000, in the file's order). All 64 x 64.
// The test split has no labels and is not read.
//
// The decoded cache: after decoding, the pixels are written to root/.cgrad-cache.bin (ImageFolder)
// or root/.cgrad-cache-train.bin / -val.bin (TinyImageNet), atomically (temporary file, fsync,
// rename). The next load uses it when its fingerprint of the file list still matches: number of
// files, total bytes, newest modification time, and a 64-bit FNV-1a hash of every file's path
// (relative to root), label, size and modification time. Adding, removing, renaming, moving or
// touching an image invalidates it. A cache that cannot be written (read-only root) only costs a
// warning on stderr; a cache that does not match or is damaged is ignored and rewritten.
// Layout, little-endian: "CGRADIMG", u32 version 1, u32 channels 3, u32 height, u32 width,
// u64 count, u64 total bytes, i64 newest mtime (ns), u64 hash, u64 pixel bytes, then the pixels
// (count, 3, H, W).
#ifndef CG_IMAGE_FOLDER_H
#define CG_IMAGE_FOLDER_H

#include "datasets/dataset.h"

// ImageFolder root. *out: (N, 3, H, W) u8 NCHW with H x W the size of the first image, labels i32
// in [0, classes), class names = the folder names; free with cg_dataset_free. use_cache = false
// neither reads nor writes the cache. *from_cache (may be NULL) says whether the pixels came from it.
// Errors (*out NULL): CG_ERR_IO: root or an image missing or unreadable; CG_ERR_FORMAT, naming the
// file: no class folders, a class without images, an unsupported image type (by extension or by
// its first bytes), a corrupt or truncated JPEG / PNG (with stb_image's reason), an image of
// another size than the first (both named), a side above CG_IMAGE_MAX_SIDE (8192), a file over
// 64 MiB; CG_ERR_OOM.
cg_status cg_image_folder_load(const char *root, bool use_cache, bool *from_cache, cg_dataset **out);

// TinyImageNet-200 root (the extracted tiny-imagenet-200/), training set (train = true, 100000
// images) or validation set (10000). *out: (N, 3, 64, 64) u8 NCHW, labels i32 in 0..199 in
// wnids.txt's order, 200 names; *from_cache as above.
// Errors: cg_image_folder_load's, and (CG_ERR_FORMAT, naming the file): wnids.txt empty or with a
// repeated id or an id that is not a plain name; a val_annotations.txt entry without a tab or
// naming an id that is not in wnids.txt.
cg_status cg_tinyimagenet_load(const char *root, bool train, bool use_cache, bool *from_cache, cg_dataset **out);

// ---- one split of an image data set, with what the load did --------------------------------------

typedef enum {
    CG_IMAGE_SPLITS,       // an ImageFolder per split: DIR/train, and DIR/val (or, without it, DIR/test)
    CG_IMAGE_TINYIMAGENET, // TinyImageNet-200: DIR/train and DIR/val (cg_tinyimagenet_load)
} cg_image_layout;

// What happened to the decoded cache during a load.
typedef enum {
    CG_CACHE_OFF,         // use_cache false: decoded, nothing read or written
    CG_CACHE_USED,        // the pixels came from the cache
    CG_CACHE_WRITTEN,     // there was no cache: decoded, then the cache was written
    CG_CACHE_REBUILT,     // a cache was there but no longer matched the files (added, removed, renamed,
                          // touched) or was damaged: decoded, then rewritten
    CG_CACHE_NOT_WRITTEN, // decoded; the cache could not be written (a warning on stderr says why)
} cg_image_cache;

typedef struct {
    const char *split;      // the folder read: "train", "val" or "test"
    char folder[1024];      // its path (cut short if longer)
    cg_image_cache cache;
    char cache_path[1024];  // the cache file (cut short if longer)
    int64_t images;
    double seconds;         // wall-clock time of the whole load: listing, fingerprint, cache or decoding
} cg_image_load_report;

// One split of an image data set, as cnn --dataset folder|tinyimagenet reads it: train = true
// reads DIR/train; train = false reads DIR/val, or DIR/test when there is no DIR/val (an
// ImageFolder layout; TinyImageNet's test/ has no labels, so its val/ is always read). *report
// (may be NULL) says which folder was read, what happened to the decoded cache and how long it
// took (cg_image_load_describe turns it into a sentence). *out as cg_image_folder_load's.
// Errors: those of cg_image_folder_load / cg_tinyimagenet_load, and (CG_ERR_IO) for
// CG_IMAGE_SPLITS a DIR without train/, or without both val/ and test/, naming what was looked for.
cg_status cg_image_dataset_load(cg_image_layout layout, const char *dir, bool train, bool use_cache,
                                cg_image_load_report *report, cg_dataset **out);

// One line for the user, no newline: "train split (DIR/train): 101000 images from the decoded cache
// DIR/.cgrad-cache-train.bin in 1.23 s", "test split (DIR/test): 10000 images decoded in 9.80 s (no
// decoded cache yet: wrote DIR/test/.cgrad-cache.bin)". Always '\0'-terminated within size bytes.
void cg_image_load_describe(const cg_image_load_report *report, char *text, size_t size);

#endif
