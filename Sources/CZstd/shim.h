#ifndef CKV_CZSTD_SHIM_H
#define CKV_CZSTD_SHIM_H
// The advanced API (ZSTD_c_checksumFlag, ZSTD_compress2, streaming) is stable since 1.4.0.
#include <zstd.h>
#include <zstd_errors.h>
#endif
