/* Layer 3: the block size of every class (see sizeclass.h for the grid and its waste bound). */
#include "sizeclass.h"

/* In .data.rel.ro (read-only once the loader has relocated the library, like .rodata), not in .rodata: the
 * slow paths read it in every process, and its pages are the ones the loader writes anyway; in .rodata it
 * faulted that segment in (with the unwind tables beside it, 40 KiB: docs/design.md, "What a process pays
 * before it holds data"). */
__attribute__((section(".data.rel.ro"))) const uint32_t zc_class_size[ZC_CLASS_COUNT] = {
    0,     16,    32,    48,    64,    /* multiples of 16: every block is 16-aligned */
    80,    96,    112,   128,   160,   192,   224,   256,   320,   384,   448,   512,
    640,   768,   896,   1024,  1280,  1536,  1792,  2048,  2560,  3072,  3584,  4096,
    5120,  6144,  7168,  8192,  /* last class in 64 KiB pages */
    10240, 12288, 14336, 16384, 20480, 24576, 28672, 32768, 40960, 49152, 57344, 65536,
};
