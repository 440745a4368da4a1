#ifndef CKV_CZLIB_SHIM_H
#define CKV_CZLIB_SHIM_H
// crc32(): the CRC-32 of every .ckvt frame; uncompress(): the tests read PNG screenshots.
#include <zlib.h>
#endif
