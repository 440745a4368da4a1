#ifndef CKV_CZLIB_SHIM_H
#define CKV_CZLIB_SHIM_H
// Only crc32() is used: the CRC-32 of every .ckvt frame.
#include <zlib.h>
#endif
