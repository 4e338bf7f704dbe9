/* fuzz_mnist_json -- MNIST digit-file reader (src/io/mnist.c, cJSON).
 *
 * Each input is one digit file's text ({"data": [...]}, 784 values in
 * [0, 1] per image).  nh_mnist_json_parse must either give count images of
 * 784 finite values in [0, 1] or fail with a message.  The same bytes are
 * then written as DIR/0.json and, when the parse succeeded, hard-linked as
 * 1.json .. 9.json: nh_mnist_load must fail with the same status, or load
 * 10 x count images whose pixels equal the parsed ones and whose labels are
 * the file digits.  The parsed text is placed to end at a PROT_NONE page, so
 * an over-read by the (uninstrumented) system cJSON faults. */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    nhf_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nhf_init();
    double *pix = NULL;
    size_t count = 12345;
    /* The text ends at a guard page: cJSON (not instrumented) must not read past len. */
    nh_status sa = nh_mnist_json_parse(nhf_guarded(data, size), size, "fuzz.json", &pix, &count);
    nhf_note("nh_mnist_json_parse", sa);
    if (sa == NH_OK) {
        NHF_CHECK(pix != NULL, "parse OK with NULL pixels");
        for (size_t k = 0; k < count * 784; k++)
            NHF_CHECK(pix[k] >= 0.0 && pix[k] <= 1.0, "pixel %zu = %g outside [0, 1]", k, pix[k]);
    } else {
        NHF_CHECK(pix == NULL && nh_last_error()[0], "parse failed (%s): pixels set or no message", nh_strerror(sa));
    }

    const char *dir = nhf_path("digits");
    nhf_mkdir(dir);
    char f0[1100], fk[1100];
    snprintf(f0, sizeof f0, "%s/0.json", dir);
    nhf_write(f0, data, size);
    if (sa == NH_OK)
        for (int k = 1; k < 10; k++) {
            snprintf(fk, sizeof fk, "%s/%d.json", dir, k);
            NHF_SETUP(link(f0, fk) == 0, "link");
        }
    nh_images im;
    nh_status sb = nh_mnist_load(dir, &im);
    NHF_CHECK(sa == sb, "nh_mnist_json_parse says %s, nh_mnist_load says %s", nh_strerror(sa), nh_strerror(sb));
    if (sb == NH_OK) {
        NHF_CHECK(im.n == 10 * count && im.rows == 28 && im.cols == 28 && im.nclass == 10,
                  "loaded %zu images of %zu x %zu (%zu classes) from 10 x %zu", im.n, im.rows, im.cols, im.nclass,
                  count);
        for (size_t i = 0; i < im.n; i++) {
            NHF_CHECK(im.labels[i] == (int)(i / count), "image %zu has label %d", i, im.labels[i]);
            NHF_CHECK(memcmp(im.pixels + i * 784, pix + (i % count) * 784, 784 * sizeof(double)) == 0,
                      "image %zu differs from the parsed one", i);
        }
    } else {
        NHF_CHECK(im.n == 0 && !im.pixels && !im.labels, "failed load left images behind");
    }
    nh_images_free(&im);
    nhf_rmtree(dir);
    free(pix);
    return 0;
}
